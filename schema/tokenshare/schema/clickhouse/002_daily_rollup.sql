-- Daily partial sums per (dimension, value, day): the state every share,
-- window and alert is derived from (weeks are sums of days, never stored).
-- Filled by a materialized view on raw_events, so it sees exactly the rows
-- the idempotent writer stored: exact under redelivery, and late rows land
-- in their own day. Read with GROUP BY (or FINAL): parts merge lazily.
CREATE TABLE IF NOT EXISTS {db}.daily_rollup
(
    dimension         LowCardinality(String),
    value             String,
    day               Date,
    tokens            SimpleAggregateFunction(sum, UInt64),
    prompt_tokens     SimpleAggregateFunction(sum, UInt64),
    completion_tokens SimpleAggregateFunction(sum, UInt64),
    reasoning_tokens  SimpleAggregateFunction(sum, UInt64),
    cached_tokens     SimpleAggregateFunction(sum, UInt64),
    requests          SimpleAggregateFunction(sum, UInt64),
    spend_usd         SimpleAggregateFunction(sum, Float64),
    max_ts            SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (dimension, day, value);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.daily_rollup_mv TO {db}.daily_rollup AS
SELECT
    dv.1 AS dimension,
    dv.2 AS value,
    day,
    sum(total_tokens) AS tokens,
    sum(prompt_tokens) AS prompt_tokens,
    sum(completion_tokens) AS completion_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(cached_tokens) AS cached_tokens,
    count() AS requests,
    sum(cost_usd) AS spend_usd,
    max(ts) AS max_ts
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
GROUP BY dimension, value, day;
