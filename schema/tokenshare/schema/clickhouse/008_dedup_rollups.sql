-- A retried insert (same insert_deduplication_token) is dropped by raw_events,
-- but its materialized views would still add the block to the rollups unless
-- they deduplicate too: inserts pin deduplicate_blocks_in_dependent_materialized_views,
-- and the views' target tables need a deduplication window of their own.
ALTER TABLE {db}.daily_rollup MODIFY SETTING non_replicated_deduplication_window = 10000;

ALTER TABLE {db}.partition_watermarks MODIFY SETTING non_replicated_deduplication_window = 10000;
