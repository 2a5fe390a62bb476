-- Daily sums of every dimension within each value of a segment dimension (weights,
-- origin_bloc, reasoning, category), and within all traffic (segment ''): what rules
-- with a `where` filter share out (China-origin open models against rest-of-world
-- open ones), and the extra sums ratio rules divide (reasoning and cached tokens,
-- requests that made a tool call). Filled like daily_rollup, by a materialized view
-- on the de-duplicated raw_events, so it is exact under redelivery for the same
-- reasons (see 008: inserts deduplicate dependent views; the target keeps a window).
CREATE TABLE IF NOT EXISTS {db}.segment_rollup
(
    segment_dimension  LowCardinality(String)  COMMENT 'empty: all traffic',
    segment_value      LowCardinality(String),
    dimension          LowCardinality(String),
    value              String,
    day                Date,
    tokens             SimpleAggregateFunction(sum, UInt64),
    prompt_tokens      SimpleAggregateFunction(sum, UInt64),
    completion_tokens  SimpleAggregateFunction(sum, UInt64),
    requests           SimpleAggregateFunction(sum, UInt64),
    spend_usd          SimpleAggregateFunction(sum, Float64),
    reasoning_tokens   SimpleAggregateFunction(sum, UInt64),
    cached_tokens      SimpleAggregateFunction(sum, UInt64),
    tool_call_requests SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (dimension, segment_dimension, segment_value, day, value)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.segment_rollup_mv TO {db}.segment_rollup AS
SELECT
    sv.1 AS segment_dimension,
    sv.2 AS segment_value,
    dv.1 AS dimension,
    dv.2 AS value,
    day,
    sum(total_tokens) AS tokens,
    sum(prompt_tokens) AS prompt_tokens,
    sum(completion_tokens) AS completion_tokens,
    count() AS requests,
    sum(cost_usd) AS spend_usd,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(cached_tokens) AS cached_tokens,
    countIf(tool_calls > 0) AS tool_call_requests
FROM {db}.raw_events
ARRAY JOIN [
    ('origin_bloc', origin_bloc),
    ('origin_country', origin_country),
    ('author', author),
    ('model', model_canonical),
    ('weights', weights),
    ('size_class', size_class),
    ('reasoning', reasoning),
    ('category', ifNull(category, 'unidentified')),
    ('provider', provider),
    ('region', ifNull(region, 'unidentified')),
    ('language', ifNull(language, 'unidentified'))
] AS dv
ARRAY JOIN [
    ('', ''),
    ('weights', weights),
    ('origin_bloc', origin_bloc),
    ('reasoning', reasoning),
    ('category', ifNull(category, 'unidentified'))
] AS sv
GROUP BY segment_dimension, segment_value, dimension, value, day;

-- Alerts carry how urgent they are, what kind of finding they are, and why.
ALTER TABLE {db}.alerts ADD COLUMN IF NOT EXISTS severity LowCardinality(String) DEFAULT 'warning' COMMENT 'info | warning | critical';
ALTER TABLE {db}.alerts ADD COLUMN IF NOT EXISTS kind LowCardinality(String) DEFAULT 'change' COMMENT 'change | baseline | digest';
ALTER TABLE {db}.alerts ADD COLUMN IF NOT EXISTS explanation String DEFAULT '';
ALTER TABLE {db}.alerts COMMENT COLUMN window_kind 'iso_week | rolling_7d | month';
