-- Rows that arrived after their day had closed (the watermark, the least
-- per-partition event time minus the allowed lateness, had passed the day's
-- end). They are stored in raw_events and counted in the rollups like any
-- other row; this table reports them, per insert and day.
CREATE TABLE IF NOT EXISTS {db}.late_events
(
    recorded_at DateTime64(3, 'UTC'),
    day         Date,
    rows        UInt64,
    tokens      UInt64,
    watermark   DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (day, recorded_at);
