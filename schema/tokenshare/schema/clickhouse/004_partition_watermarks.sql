-- Greatest event time stored per source partition. The share stage's
-- watermark is the least of these (minus the allowed lateness): a fast
-- partition cannot close windows that a slower one is still filling.
CREATE TABLE IF NOT EXISTS {db}.partition_watermarks
(
    src_topic     LowCardinality(String),
    src_partition UInt32,
    max_ts        SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    rows          SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (src_topic, src_partition);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.partition_watermarks_mv TO {db}.partition_watermarks AS
SELECT src_topic, src_partition, max(ts) AS max_ts, count() AS rows
FROM {db}.raw_events
GROUP BY src_topic, src_partition;
