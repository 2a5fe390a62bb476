-- Views for analysts. All read the daily partial sums (small, exact) except
-- the retention views, which need per-app/per-user activity from raw_events.

-- Shares per ISO week (Monday, UTC) for every dimension and value, of every
-- measure; *_identified leave the 'unidentified' bucket out of the whole.
CREATE VIEW IF NOT EXISTS {db}.weekly_shares AS
SELECT
    dimension, value, week, tokens, prompt_tokens, completion_tokens, requests, spend_usd,
    tokens / sum(tokens) OVER w AS token_share,
    if(value = 'unidentified', 0,
       tokens / sum(if(value = 'unidentified', 0, tokens)) OVER w) AS token_share_identified,
    requests / sum(requests) OVER w AS request_share,
    if(sum(spend_usd) OVER w > 0, spend_usd / sum(spend_usd) OVER w, 0) AS spend_share
FROM
(
    SELECT dimension, value, toMonday(day) AS week,
           sum(tokens) AS tokens, sum(prompt_tokens) AS prompt_tokens,
           sum(completion_tokens) AS completion_tokens, sum(requests) AS requests,
           sum(spend_usd) AS spend_usd
    FROM {db}.daily_rollup
    GROUP BY dimension, value, week
)
WINDOW w AS (PARTITION BY dimension, week);

-- Shares in rolling 7-day windows, one per day: the window ending on
-- `window_end` covers window_end - 6 .. window_end. Each day's sums are spread
-- to the seven windows that contain it, so gaps in a value's traffic count as 0.
CREATE VIEW IF NOT EXISTS {db}.rolling_shares AS
SELECT
    dimension, value, window_end, tokens, requests, spend_usd,
    tokens / sum(tokens) OVER w AS token_share,
    if(value = 'unidentified', 0,
       tokens / sum(if(value = 'unidentified', 0, tokens)) OVER w) AS token_share_identified,
    requests / sum(requests) OVER w AS request_share,
    if(sum(spend_usd) OVER w > 0, spend_usd / sum(spend_usd) OVER w, 0) AS spend_share
FROM
(
    SELECT dimension, value, day + k AS window_end,
           sum(tokens) AS tokens, sum(requests) AS requests, sum(spend_usd) AS spend_usd
    FROM {db}.daily_rollup
    ARRAY JOIN range(7) AS k
    WHERE day + k <= (SELECT max(day) FROM {db}.daily_rollup)
    GROUP BY dimension, value, window_end
)
WINDOW w AS (PARTITION BY dimension, window_end);

-- Crossovers as published by the share stage (one row per alert).
CREATE VIEW IF NOT EXISTS {db}.crossovers AS
SELECT
    window_kind, window_start, window_end, window_label, status, dimension, measure,
    JSONExtractString(details, 'leader') AS leader,
    JSONExtractString(details, 'overtaken') AS overtaken,
    JSONExtractFloat(details, 'margin_pp') AS margin_pp,
    text, fired_at, alert_id
FROM {db}.alerts FINAL
WHERE rule = 'crossover';

-- Market concentration per ISO week and dimension: top-1 share, HHI (sum of
-- squared shares, 0..1) and how many values hold more than 1%.
CREATE VIEW IF NOT EXISTS {db}.weekly_concentration AS
SELECT
    dimension, week,
    max(token_share) AS top1_share,
    argMax(value, token_share) AS top1_value,
    sum(token_share * token_share) AS hhi,
    countIf(token_share > 0.01) AS values_above_1pct,
    count() AS values_total
FROM {db}.weekly_shares
WHERE value != 'unidentified'
GROUP BY dimension, week;

-- Average prompt and completion tokens per request, by category and ISO week.
CREATE VIEW IF NOT EXISTS {db}.weekly_request_size AS
SELECT
    value AS category, week, requests,
    prompt_tokens / requests AS avg_prompt_tokens,
    completion_tokens / requests AS avg_completion_tokens
FROM {db}.weekly_shares
WHERE dimension = 'category' AND requests > 0;

-- Token share versus spend share by author (lab) per ISO week.
CREATE VIEW IF NOT EXISTS {db}.token_vs_spend AS
SELECT
    value AS author, week, tokens, spend_usd, token_share, spend_share,
    if(token_share > 0, spend_share / token_share, 0) AS spend_to_token_ratio
FROM {db}.weekly_shares
WHERE dimension = 'author';

-- Cohort retention: apps first seen with a model in ISO week `cohort_week`,
-- and how many of them still use that model `weeks_after` weeks later.
CREATE VIEW IF NOT EXISTS {db}.app_retention AS
WITH activity AS
(
    SELECT DISTINCT assumeNotNull(app_id) AS member, model_canonical AS model,
           toMonday(day) AS week
    FROM {db}.raw_events
    WHERE app_id IS NOT NULL
),
cohorts AS
(
    SELECT member, model, min(week) AS cohort_week FROM activity GROUP BY member, model
)
SELECT
    c.model AS model, c.cohort_week AS cohort_week,
    intDiv(dateDiff('day', c.cohort_week, a.week), 7) AS weeks_after,
    uniqExact(a.member) AS active,
    any(s.size) AS cohort_size,
    uniqExact(a.member) / any(s.size) AS retention
FROM cohorts AS c
INNER JOIN activity AS a ON a.member = c.member AND a.model = c.model
INNER JOIN
(
    SELECT model, cohort_week, count() AS size FROM cohorts GROUP BY model, cohort_week
) AS s ON s.model = c.model AND s.cohort_week = c.cohort_week
WHERE a.week >= c.cohort_week
GROUP BY model, cohort_week, weeks_after;

-- The same for users (user_id is opaque).
CREATE VIEW IF NOT EXISTS {db}.user_retention AS
WITH activity AS
(
    SELECT DISTINCT assumeNotNull(user_id) AS member, model_canonical AS model,
           toMonday(day) AS week
    FROM {db}.raw_events
    WHERE user_id IS NOT NULL
),
cohorts AS
(
    SELECT member, model, min(week) AS cohort_week FROM activity GROUP BY member, model
)
SELECT
    c.model AS model, c.cohort_week AS cohort_week,
    intDiv(dateDiff('day', c.cohort_week, a.week), 7) AS weeks_after,
    uniqExact(a.member) AS active,
    any(s.size) AS cohort_size,
    uniqExact(a.member) / any(s.size) AS retention
FROM cohorts AS c
INNER JOIN activity AS a ON a.member = c.member AND a.model = c.model
INNER JOIN
(
    SELECT model, cohort_week, count() AS size FROM cohorts GROUP BY model, cohort_week
) AS s ON s.model = c.model AND s.cohort_week = c.cohort_week
WHERE a.week >= c.cohort_week
GROUP BY model, cohort_week, weeks_after;
