-- Views for the study's analyses: segments (one dimension within another),
-- per-request figures, tool calls and cache hits, prices, volume and growth,
-- calendar months, continents, monthly retention, models per app and user,
-- cost against volume. They read stored columns and catalog enrichment only,
-- never a particular producer's values.

-- Every event with its dimensions under the vocabulary's names (model is the
-- catalog slug; request labels an event lacks are 'unidentified', as in
-- daily_rollup), its ISO week and calendar month, and its continent.
-- Continents follow the UN M49 geoscheme (https://unstats.un.org/unsd/methodology/m49/),
-- with the Caribbean and Central America in North America. A region is read as an
-- ISO 3166-1 alpha-2 code or a continent name first, then by the prefix of a
-- cloud region name (us-east-1, eu-west, ap-southeast, europe-west1, sa-east ...).
CREATE VIEW IF NOT EXISTS {db}.event_dimensions AS
SELECT
    ts, day, toMonday(day) AS week, toStartOfMonth(day) AS month,
    origin_bloc, origin_country, author, lab, model_canonical AS model, weights, size_class,
    reasoning, ifNull(category, 'unidentified') AS category, provider,
    ifNull(region, 'unidentified') AS region,
    multiIf(
        region IS NULL, 'unidentified',
        lower(region) IN ('africa'), 'Africa',
        lower(region) IN ('asia', 'middle east', 'middle-east', 'middle_east'), 'Asia',
        lower(region) IN ('europe', 'eu', 'uk'), 'Europe',
        lower(region) IN ('north america', 'north-america', 'north_america', 'northamerica'),
            'North America',
        lower(region) IN ('south america', 'south-america', 'south_america', 'southamerica',
                          'latin america', 'latam'), 'South America',
        lower(region) IN ('oceania', 'australia'), 'Oceania',
        lower(region) IN ('antarctica', 'aq'), 'Antarctica',
        lower(region) IN (
            'dz', 'ao', 'bj', 'bw', 'bf', 'bi', 'cv', 'cm', 'cf', 'td', 'km', 'cg', 'cd', 'ci',
            'dj', 'eg', 'gq', 'er', 'sz', 'et', 'ga', 'gm', 'gh', 'gn', 'gw', 'ke', 'ls', 'lr',
            'ly', 'mg', 'mw', 'ml', 'mr', 'mu', 'yt', 'ma', 'mz', 'na', 'ne', 'ng', 're', 'rw',
            'sh', 'st', 'sn', 'sc', 'sl', 'so', 'za', 'ss', 'sd', 'tz', 'tg', 'tn', 'ug', 'eh',
            'zm', 'zw', 'io', 'tf'), 'Africa',
        lower(region) IN (
            'af', 'am', 'az', 'bh', 'bd', 'bt', 'bn', 'kh', 'cn', 'cy', 'ge', 'hk', 'in', 'id',
            'ir', 'iq', 'il', 'jo', 'jp', 'kz', 'kw', 'kg', 'la', 'lb', 'mo', 'my', 'mv', 'mn',
            'mm', 'np', 'kp', 'om', 'pk', 'ps', 'ph', 'qa', 'sa', 'sg', 'kr', 'lk', 'sy', 'tw',
            'tj', 'th', 'tl', 'tr', 'tm', 'ae', 'uz', 'vn', 'ye'), 'Asia',
        lower(region) IN (
            'ax', 'al', 'ad', 'at', 'by', 'be', 'ba', 'bg', 'hr', 'cz', 'dk', 'ee', 'fo', 'fi',
            'fr', 'de', 'gi', 'gr', 'gg', 'va', 'hu', 'is', 'ie', 'im', 'it', 'je', 'xk', 'lv',
            'li', 'lt', 'lu', 'mt', 'md', 'mc', 'me', 'nl', 'mk', 'no', 'pl', 'pt', 'ro', 'ru',
            'sm', 'rs', 'sk', 'si', 'es', 'sj', 'se', 'ch', 'ua', 'gb'), 'Europe',
        lower(region) IN (
            'ai', 'ag', 'aw', 'bs', 'bb', 'bz', 'bm', 'bq', 'vg', 'ca', 'ky', 'cr', 'cu', 'cw',
            'dm', 'do', 'sv', 'gl', 'gd', 'gp', 'gt', 'ht', 'hn', 'jm', 'mq', 'mx', 'ms', 'ni',
            'pa', 'pr', 'bl', 'kn', 'lc', 'mf', 'pm', 'vc', 'sx', 'tt', 'tc', 'us', 'vi', 'um'),
            'North America',
        lower(region) IN (
            'ar', 'bo', 'bv', 'br', 'cl', 'co', 'ec', 'fk', 'gf', 'gy', 'py', 'pe', 'gs', 'sr',
            'uy', 've'), 'South America',
        lower(region) IN (
            'as', 'au', 'ck', 'fj', 'pf', 'gu', 'ki', 'mh', 'fm', 'nr', 'nc', 'nz', 'nu', 'nf',
            'mp', 'pw', 'pg', 'pn', 'ws', 'sb', 'tk', 'to', 'tv', 'vu', 'wf', 'cx', 'cc', 'hm'),
            'Oceania',
        extract(lower(region), '^[a-z]+') IN ('us', 'ca', 'mx', 'northamerica', 'na'),
            'North America',
        extract(lower(region), '^[a-z]+') IN ('eu', 'uk', 'europe'), 'Europe',
        extract(lower(region), '^[a-z]+') IN ('ap', 'asia', 'cn', 'jp', 'japan', 'in', 'india',
                                              'kr', 'korea', 'sg', 'me', 'il', 'hk', 'tw'),
            'Asia',
        extract(lower(region), '^[a-z]+') IN ('sa', 'southamerica', 'br', 'brazil', 'latam'),
            'South America',
        extract(lower(region), '^[a-z]+') IN ('af', 'africa', 'za'), 'Africa',
        extract(lower(region), '^[a-z]+') IN ('au', 'australia', 'nz', 'oceania'), 'Oceania',
        'unidentified'
    ) AS continent,
    ifNull(language, 'unidentified') AS language,
    app_id, user_id,
    total_tokens AS tokens, prompt_tokens, completion_tokens, reasoning_tokens, cached_tokens,
    toUInt64(1) AS requests, cost_usd AS spend_usd, tool_calls,
    toUInt64(tool_calls > 0) AS tool_requests, if(tool_calls > 0, total_tokens, 0) AS tool_tokens,
    toUInt64(cached_tokens > 0) AS cached_requests,
    origin_bloc != 'unidentified' AS placed
FROM {db}.raw_events;

-- Values of author and model the catalog cannot place: no stored row of theirs
-- has a known origin (OpenRouter's stealth models, labs missing from the
-- catalog). `--exclude-unidentified` leaves them out with the 'unidentified'
-- value, so that it removes the same traffic from every catalog dimension.
CREATE VIEW IF NOT EXISTS {db}.unplaced_values AS
SELECT 'author' AS dimension, author AS value
FROM {db}.raw_events GROUP BY author HAVING countIf(origin_bloc != 'unidentified') = 0
UNION ALL
SELECT 'model' AS dimension, model_canonical AS value
FROM {db}.raw_events GROUP BY model_canonical HAVING countIf(origin_bloc != 'unidentified') = 0;

-- Per-request figures and unit price per dimension value and ISO week, from
-- the daily sums: prompt, completion and reasoning tokens per request, the
-- reasoning share of completion tokens, the cache-hit share of prompt tokens,
-- and the effective price in USD per million tokens.
CREATE VIEW IF NOT EXISTS {db}.weekly_per_request AS
SELECT
    dimension, value, week, requests, tokens, prompt_tokens, completion_tokens,
    reasoning_tokens, cached_tokens, spend_usd,
    prompt_tokens / requests AS prompt_per_request,
    completion_tokens / requests AS completion_per_request,
    reasoning_tokens / requests AS reasoning_per_request,
    if(completion_tokens > 0, reasoning_tokens / completion_tokens, 0) AS reasoning_share,
    if(prompt_tokens > 0, cached_tokens / prompt_tokens, 0) AS cache_hit_share,
    if(tokens > 0, spend_usd / tokens * 1000000, 0) AS usd_per_mtok
FROM
(
    SELECT dimension, value, toMonday(day) AS week,
           sum(requests) AS requests, sum(tokens) AS tokens,
           sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
           sum(reasoning_tokens) AS reasoning_tokens, sum(cached_tokens) AS cached_tokens,
           sum(spend_usd) AS spend_usd
    FROM {db}.daily_rollup
    GROUP BY dimension, value, week
)
WHERE requests > 0;

-- Tool calls and cache hits per dimension value and ISO week: the share of
-- tokens (and of requests) in requests that made at least one tool call, and
-- in requests that read cached prompt tokens.
CREATE VIEW IF NOT EXISTS {db}.weekly_tool_use AS
SELECT
    dimension, value, week, requests, tokens, tool_requests, tool_tokens,
    cached_requests, cached_tokens, prompt_tokens,
    tool_tokens / tokens AS tool_token_share,
    tool_requests / requests AS tool_request_share,
    cached_requests / requests AS cache_hit_request_share,
    if(prompt_tokens > 0, cached_tokens / prompt_tokens, 0) AS cache_hit_share
FROM
(
    SELECT dv.1 AS dimension, dv.2 AS value, week,
           sum(requests) AS requests, sum(tokens) AS tokens,
           sum(tool_requests) AS tool_requests, sum(tool_tokens) AS tool_tokens,
           sum(cached_requests) AS cached_requests, sum(cached_tokens) AS cached_tokens,
           sum(prompt_tokens) AS prompt_tokens
    FROM {db}.event_dimensions
    ARRAY JOIN [
        ('origin_bloc', origin_bloc), ('origin_country', origin_country), ('author', author),
        ('model', model), ('weights', weights), ('size_class', size_class),
        ('reasoning', reasoning), ('category', category), ('provider', provider),
        ('region', region), ('language', language)
    ] AS dv
    GROUP BY dimension, value, week
)
WHERE tokens > 0;

-- The whole market per ISO week: volume, spend, the per-request figures and
-- tool and cache shares of weekly_per_request and weekly_tool_use, and the change on the previous ISO week (NULL when that week
-- has no traffic). `days` counts the days with traffic: a partial first or
-- last week shows as fewer than 7.
CREATE VIEW IF NOT EXISTS {db}.weekly_totals AS
SELECT
    week, days, requests, tokens, prompt_tokens, completion_tokens, reasoning_tokens,
    cached_tokens, spend_usd, tool_requests, tool_tokens, cached_requests,
    prompt_tokens / requests AS prompt_per_request,
    completion_tokens / requests AS completion_per_request,
    reasoning_tokens / requests AS reasoning_per_request,
    if(completion_tokens > 0, reasoning_tokens / completion_tokens, 0) AS reasoning_share,
    tool_tokens / tokens AS tool_token_share,
    tool_requests / requests AS tool_request_share,
    if(prompt_tokens > 0, cached_tokens / prompt_tokens, 0) AS cache_hit_share,
    cached_requests / requests AS cache_hit_request_share,
    if(tokens > 0, spend_usd / tokens * 1000000, 0) AS usd_per_mtok,
    if(prev_week = week - 7, prev_tokens, NULL) AS prev_week_tokens,
    if(prev_week = week - 7 AND prev_tokens > 0, tokens / prev_tokens - 1, NULL) AS tokens_wow,
    if(prev_week = week - 7 AND prev_requests > 0, requests / prev_requests - 1, NULL)
        AS requests_wow,
    if(prev_week = week - 7 AND prev_spend > 0, spend_usd / prev_spend - 1, NULL) AS spend_wow
FROM
(
    SELECT *,
           lagInFrame(week) OVER w AS prev_week,
           lagInFrame(tokens) OVER w AS prev_tokens,
           lagInFrame(requests) OVER w AS prev_requests,
           lagInFrame(spend_usd) OVER w AS prev_spend
    FROM
    (
        SELECT week, uniqExact(day) AS days, count() AS requests, sum(tokens) AS tokens,
               sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
               sum(reasoning_tokens) AS reasoning_tokens, sum(cached_tokens) AS cached_tokens,
               sum(spend_usd) AS spend_usd, sum(tool_requests) AS tool_requests,
               sum(tool_tokens) AS tool_tokens, sum(cached_requests) AS cached_requests
        FROM {db}.event_dimensions
        GROUP BY week
    )
    WINDOW w AS (ORDER BY week ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
);

-- Growth per dimension value: tokens per ISO week and the change on the
-- previous week (NULL when the value had no traffic that week).
CREATE VIEW IF NOT EXISTS {db}.weekly_growth AS
SELECT
    dimension, value, week, tokens, requests, spend_usd,
    if(prev_week = week - 7, prev_tokens, 0) AS prev_week_tokens,
    if(prev_week = week - 7 AND prev_tokens > 0, tokens / prev_tokens - 1, NULL) AS tokens_wow
FROM
(
    SELECT *,
           lagInFrame(week) OVER w AS prev_week,
           lagInFrame(tokens) OVER w AS prev_tokens
    FROM
    (
        SELECT dimension, value, toMonday(day) AS week, sum(tokens) AS tokens,
               sum(requests) AS requests, sum(spend_usd) AS spend_usd
        FROM {db}.daily_rollup
        GROUP BY dimension, value, week
    )
    WINDOW w AS (PARTITION BY dimension, value ORDER BY week
                 ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
);

-- Shares per calendar month (the reports count months, not ISO weeks); `days`
-- counts the month's days with traffic.
CREATE VIEW IF NOT EXISTS {db}.monthly_shares AS
SELECT
    dimension, value, month, days, tokens, requests, spend_usd,
    tokens / sum(tokens) OVER w AS token_share,
    requests / sum(requests) OVER w AS request_share,
    if(sum(spend_usd) OVER w > 0, spend_usd / sum(spend_usd) OVER w, 0) AS spend_share
FROM
(
    SELECT dimension, value, toStartOfMonth(day) AS month, uniqExact(day) AS days,
           sum(tokens) AS tokens, sum(requests) AS requests, sum(spend_usd) AS spend_usd
    FROM {db}.daily_rollup
    GROUP BY dimension, value, month
)
WINDOW w AS (PARTITION BY dimension, month);

-- The whole market per calendar month and the change on the previous month.
CREATE VIEW IF NOT EXISTS {db}.monthly_totals AS
SELECT
    month, days, requests, tokens, spend_usd,
    if(prev_month = addMonths(month, -1), prev_tokens, NULL) AS prev_month_tokens,
    if(prev_month = addMonths(month, -1) AND prev_tokens > 0, tokens / prev_tokens - 1, NULL)
        AS tokens_mom
FROM
(
    SELECT *,
           lagInFrame(month) OVER w AS prev_month,
           lagInFrame(tokens) OVER w AS prev_tokens
    FROM
    (
        SELECT month, uniqExact(day) AS days, count() AS requests, sum(tokens) AS tokens,
               sum(spend_usd) AS spend_usd
        FROM {db}.event_dimensions
        GROUP BY month
    )
    WINDOW w AS (ORDER BY month ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
);

-- Shares of tokens, spend and requests by continent per ISO week.
CREATE VIEW IF NOT EXISTS {db}.weekly_continent_shares AS
SELECT
    continent, week, tokens, requests, spend_usd,
    tokens / sum(tokens) OVER w AS token_share,
    requests / sum(requests) OVER w AS request_share,
    if(sum(spend_usd) OVER w > 0, spend_usd / sum(spend_usd) OVER w, 0) AS spend_share
FROM
(
    SELECT continent, week, sum(tokens) AS tokens, count() AS requests,
           sum(spend_usd) AS spend_usd
    FROM {db}.event_dimensions
    GROUP BY continent, week
)
WINDOW w AS (PARTITION BY week);

-- Monthly cohort retention: apps first seen with a model in calendar month
-- `cohort_month`, how many use it `months_after` months later (`active`), and
-- how many of those are `returning`: back after a month without it (the
-- "boomerang"); active - returning stayed without a break.
CREATE VIEW IF NOT EXISTS {db}.monthly_app_retention AS
WITH activity AS
(
    SELECT DISTINCT assumeNotNull(app_id) AS member, model_canonical AS model,
           toStartOfMonth(day) AS month
    FROM {db}.raw_events
    WHERE app_id IS NOT NULL
),
cohorts AS
(
    SELECT member, model, min(month) AS cohort_month FROM activity GROUP BY member, model
)
SELECT
    c.model AS model, c.cohort_month AS cohort_month,
    toUInt32(dateDiff('month', c.cohort_month, a.month)) AS months_after,
    any(s.size) AS cohort_size,
    count() AS active,
    countIf(p.seen = 0 AND a.month > c.cohort_month) AS returning,
    active / cohort_size AS retention
FROM cohorts AS c
INNER JOIN activity AS a ON a.member = c.member AND a.model = c.model
INNER JOIN
(
    SELECT model, cohort_month, count() AS size FROM cohorts GROUP BY model, cohort_month
) AS s ON s.model = c.model AND s.cohort_month = c.cohort_month
LEFT JOIN
(
    SELECT member, model, addMonths(month, 1) AS next_month, toUInt8(1) AS seen FROM activity
) AS p ON p.member = a.member AND p.model = a.model AND p.next_month = a.month
GROUP BY model, cohort_month, months_after;

-- The same for users (user_id is opaque).
CREATE VIEW IF NOT EXISTS {db}.monthly_user_retention AS
WITH activity AS
(
    SELECT DISTINCT assumeNotNull(user_id) AS member, model_canonical AS model,
           toStartOfMonth(day) AS month
    FROM {db}.raw_events
    WHERE user_id IS NOT NULL
),
cohorts AS
(
    SELECT member, model, min(month) AS cohort_month FROM activity GROUP BY member, model
)
SELECT
    c.model AS model, c.cohort_month AS cohort_month,
    toUInt32(dateDiff('month', c.cohort_month, a.month)) AS months_after,
    any(s.size) AS cohort_size,
    count() AS active,
    countIf(p.seen = 0 AND a.month > c.cohort_month) AS returning,
    active / cohort_size AS retention
FROM cohorts AS c
INNER JOIN activity AS a ON a.member = c.member AND a.model = c.model
INNER JOIN
(
    SELECT model, cohort_month, count() AS size FROM cohorts GROUP BY model, cohort_month
) AS s ON s.model = c.model AND s.cohort_month = c.cohort_month
LEFT JOIN
(
    SELECT member, model, addMonths(month, 1) AS next_month, toUInt8(1) AS seen FROM activity
) AS p ON p.member = a.member AND p.model = a.model AND p.next_month = a.month
GROUP BY model, cohort_month, months_after;

-- How many models each app and each user has used, over all stored traffic,
-- and how much of its tokens went to its most-used model.
CREATE VIEW IF NOT EXISTS {db}.models_per_member AS
SELECT
    members, member, uniqExact(model) AS models, sum(model_requests) AS requests,
    sum(model_tokens) AS tokens, argMax(model, model_tokens) AS top_model,
    if(tokens > 0, max(model_tokens) / tokens, 0) AS top_model_share
FROM
(
    SELECT 'apps' AS members, assumeNotNull(app_id) AS member, model_canonical AS model,
           count() AS model_requests, sum(total_tokens) AS model_tokens
    FROM {db}.raw_events WHERE app_id IS NOT NULL GROUP BY member, model
    UNION ALL
    SELECT 'users' AS members, assumeNotNull(user_id) AS member, model_canonical AS model,
           count() AS model_requests, sum(total_tokens) AS model_tokens
    FROM {db}.raw_events WHERE user_id IS NOT NULL GROUP BY member, model
)
GROUP BY members, member;

-- Cost against volume per dimension value over all stored traffic: effective
-- price per million tokens, token and spend shares and their ratio, and the
-- quadrant: cost and volume above ('high') or at most ('low') the median over
-- the dimension's values.
CREATE VIEW IF NOT EXISTS {db}.price_volume AS
SELECT
    dimension, value, tokens, requests, spend_usd, usd_per_mtok,
    tokens / sum(tokens) OVER w AS token_share,
    if(sum(spend_usd) OVER w > 0, spend_usd / sum(spend_usd) OVER w, 0) AS spend_share,
    if(token_share > 0, spend_share / token_share, 0) AS spend_to_token_ratio,
    median(usd_per_mtok) OVER w AS median_usd_per_mtok,
    median(tokens) OVER w AS median_tokens,
    concat(if(usd_per_mtok > median_usd_per_mtok, 'high', 'low'), ' cost, ',
           if(tokens > median_tokens, 'high', 'low'), ' volume') AS quadrant
FROM
(
    SELECT dimension, value, sum(tokens) AS tokens, sum(requests) AS requests,
           sum(spend_usd) AS spend_usd, spend_usd / tokens * 1000000 AS usd_per_mtok
    FROM {db}.daily_rollup
    GROUP BY dimension, value
    HAVING tokens > 0
)
WINDOW w AS (PARTITION BY dimension);

-- Price elasticity of volume per dimension: the slope of log(tokens) on
-- log(price per million tokens) over the dimension's priced values (least
-- squares), its intercept and R squared. A slope of -0.06 reads: 10% cheaper,
-- 0.6% more tokens.
CREATE VIEW IF NOT EXISTS {db}.price_elasticity AS
SELECT
    dimension, count() AS points,
    tupleElement(simpleLinearRegression(log(usd_per_mtok), log(tokens)), 1) AS elasticity,
    tupleElement(simpleLinearRegression(log(usd_per_mtok), log(tokens)), 2) AS intercept,
    pow(corr(log(usd_per_mtok), log(tokens)), 2) AS r_squared
FROM {db}.price_volume
WHERE usd_per_mtok > 0
GROUP BY dimension
HAVING points >= 2
