-- Alerts as the share stage published them (one row per alert_id: a redelivered
-- alert replaces itself). `details` is the alert's JSON payload.
CREATE TABLE IF NOT EXISTS {db}.alerts
(
    alert_id     String,
    rule         LowCardinality(String),
    status       LowCardinality(String)  COMMENT 'provisional | final | late_correction',
    dimension    LowCardinality(String),
    measure      LowCardinality(String),
    window_kind  LowCardinality(String)  COMMENT 'iso_week | rolling_7d',
    window_start Date,
    window_end   Date                    COMMENT 'exclusive',
    window_label String,
    subject      String,
    text         String,
    details      String,
    fired_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(fired_at)
ORDER BY (alert_id);

-- Share snapshots of current windows as the share stage saw them: one row per
-- (window, dimension, measure, final, value): the latest computation wins.
CREATE TABLE IF NOT EXISTS {db}.share_snapshots
(
    window_kind     LowCardinality(String),
    window_start    Date,
    window_end      Date,
    dimension       LowCardinality(String),
    measure         LowCardinality(String),
    value           String,
    total           Float64,
    share           Float64  COMMENT 'of all values',
    share_identified Float64 COMMENT 'of values other than unidentified (0 for unidentified)',
    final           Bool,
    computed_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (window_kind, window_start, dimension, measure, final, value);
