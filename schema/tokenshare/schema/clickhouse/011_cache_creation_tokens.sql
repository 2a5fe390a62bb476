-- Cache-creation (cache-write) input tokens, kept apart from cache reads: a
-- provider bills them differently (Anthropic: 1.25x or 2x the input price, reads
-- 0.1x), so cost and cache studies need both. Like cached_tokens they are part of
-- prompt_tokens. No DEFAULT expression: rows stored before this column read 0,
-- and the column stays one the worker fills (schema.rows.ROW_COLUMNS).
ALTER TABLE {db}.raw_events
    ADD COLUMN IF NOT EXISTS cache_creation_tokens UInt32
    COMMENT 'part of prompt_tokens written to the prompt cache' AFTER cached_tokens;
