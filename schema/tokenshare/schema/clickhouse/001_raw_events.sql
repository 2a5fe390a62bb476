-- Raw events: one row per valid request, enriched from the model catalog.
-- Partitioned by month of request time; ordered for share queries (day, then
-- the catalog dimensions analysts group by most).
-- Idempotence: the store skips rows at or below the per-partition source
-- high-water mark (src_*), and same-day repeats of an event_id through the
-- `by_event_id` projection; retries of one insert are dropped by the
-- insert_deduplication_token, which plain MergeTree honours only with
-- non_replicated_deduplication_window > 0 (pinned below).
CREATE TABLE IF NOT EXISTS {db}.raw_events
(
    event_id          String,
    ts                DateTime64(3, 'UTC'),
    day               Date MATERIALIZED toDate(ts),
    model             LowCardinality(String)            COMMENT 'slug as sent by the gateway',
    model_canonical   LowCardinality(String)            COMMENT 'catalog slug (date/variant suffix removed)',
    provider          LowCardinality(String),
    prompt_tokens     UInt32,
    completion_tokens UInt32,
    reasoning_tokens  UInt32,
    cached_tokens     UInt32,
    total_tokens      UInt64 MATERIALIZED prompt_tokens + completion_tokens,
    cost_usd          Float64,
    app_id            Nullable(String),
    user_id           Nullable(String),
    category          LowCardinality(Nullable(String)),
    region            LowCardinality(Nullable(String)),
    language          LowCardinality(Nullable(String)),
    tool_calls        UInt16,
    latency_ms        Nullable(UInt32),
    finish_reason     LowCardinality(Nullable(String)),
    streamed          Bool,
    author            LowCardinality(String)            COMMENT 'slug prefix, e.g. deepseek',
    lab               LowCardinality(String),
    origin_country    LowCardinality(String)            COMMENT 'ISO 3166 alpha-2 or unidentified',
    origin_bloc       LowCardinality(String)            COMMENT 'China | US | RoW | unidentified',
    weights           LowCardinality(String)            COMMENT 'open | closed | unidentified',
    size_class        LowCardinality(String)            COMMENT 'small <15B | medium 15-70B | large >70B | unidentified',
    reasoning         LowCardinality(String)            COMMENT 'reasoning | non-reasoning | unidentified',
    params_b          Nullable(Float32),
    identified        Bool                              COMMENT 'false: model not in the catalog',
    catalog_version   LowCardinality(String),
    src_topic         LowCardinality(String),
    src_partition     UInt32,
    src_offset        UInt64,
    src_index         UInt32                            COMMENT 'position in a batched message',
    id_hash           UInt64 MATERIALIZED cityHash64(event_id),
    ingested_at       DateTime64(3, 'UTC') DEFAULT now64(3),
    PROJECTION by_event_id (SELECT day, id_hash, event_id ORDER BY (day, id_hash))
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (day, origin_bloc, author, model_canonical, ts)
SETTINGS non_replicated_deduplication_window = 10000
