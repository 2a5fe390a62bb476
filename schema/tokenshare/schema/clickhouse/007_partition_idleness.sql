-- When each source partition last received rows (ingest time). A partition
-- that has gone quiet must not hold the watermark back for ever: the share
-- stage leaves out partitions idle for longer than `idle_partition_seconds`.
ALTER TABLE {db}.partition_watermarks
    ADD COLUMN IF NOT EXISTS last_ingested SimpleAggregateFunction(max, DateTime64(3, 'UTC'));

DROP VIEW IF EXISTS {db}.partition_watermarks_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.partition_watermarks_mv TO {db}.partition_watermarks AS
SELECT src_topic, src_partition, max(ts) AS max_ts, count() AS rows,
       max(ingested_at) AS last_ingested
FROM {db}.raw_events
GROUP BY src_topic, src_partition;
