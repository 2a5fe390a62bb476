-- Least-privilege access for a ClickHouse server (server mode).
-- Apply once as an administrator, after `tokenshare store` has created the
-- schema (or run the store once as tokenshare_admin):
--   envsubst < roles.sql | clickhouse-client --multiquery
-- Passwords come from the environment (${...}); none is stored in the repository.

-- Analysts: read everything in the database, change nothing. readonly = 2
-- lets the client tune harmless settings per query, while the constraints
-- below cap what a query may use; CONST keeps readonly itself fixed.
CREATE SETTINGS PROFILE IF NOT EXISTS tokenshare_analyst_profile SETTINGS
    readonly = 2 CONST,
    max_execution_time = 60 MAX 600,
    max_memory_usage = 8000000000 MAX 16000000000,
    max_result_rows = 10000000 MAX 100000000,
    max_threads = 4 MAX 16;
CREATE ROLE IF NOT EXISTS tokenshare_analyst SETTINGS PROFILE 'tokenshare_analyst_profile';
GRANT SELECT ON tokenshare.* TO tokenshare_analyst;

-- The store: inserts rows, alerts, snapshots and late-row reports. It reads
-- only what its idempotence guards need (source positions, event ids, days),
-- never the traffic itself.
CREATE ROLE IF NOT EXISTS tokenshare_ingest;
GRANT INSERT ON tokenshare.raw_events TO tokenshare_ingest;
GRANT INSERT ON tokenshare.alerts TO tokenshare_ingest;
GRANT INSERT ON tokenshare.share_snapshots TO tokenshare_ingest;
GRANT INSERT ON tokenshare.late_events TO tokenshare_ingest;
GRANT SELECT(src_topic, src_partition, src_offset, src_index, event_id, day, id_hash)
    ON tokenshare.raw_events TO tokenshare_ingest;
GRANT SELECT ON tokenshare.partition_watermarks TO tokenshare_ingest;
GRANT SELECT ON tokenshare.schema_migrations TO tokenshare_ingest;
-- Cluster mode (TOKENSHARE_CLICKHOUSE_CLUSTER): each table above is a Distributed
-- table over <table>_local, and inserts and reads reach the local tables as the
-- same user. (Single node: these name tables that never exist, which is harmless.)
GRANT INSERT ON tokenshare.raw_events_local TO tokenshare_ingest;
GRANT INSERT ON tokenshare.alerts_local TO tokenshare_ingest;
GRANT INSERT ON tokenshare.share_snapshots_local TO tokenshare_ingest;
GRANT INSERT ON tokenshare.late_events_local TO tokenshare_ingest;
GRANT SELECT(src_topic, src_partition, src_offset, src_index, event_id, day, id_hash)
    ON tokenshare.raw_events_local TO tokenshare_ingest;
GRANT SELECT ON tokenshare.partition_watermarks_local TO tokenshare_ingest;

-- The worker's share stage reads the day sums (through the same query path
-- as analysts).
CREATE ROLE IF NOT EXISTS tokenshare_shares SETTINGS PROFILE 'tokenshare_analyst_profile';
GRANT SELECT ON tokenshare.daily_rollup TO tokenshare_shares;
GRANT SELECT ON tokenshare.partition_watermarks TO tokenshare_shares;
GRANT SELECT ON tokenshare.daily_rollup_local TO tokenshare_shares;
GRANT SELECT ON tokenshare.partition_watermarks_local TO tokenshare_shares;

-- Migrations: the schema owner, used by the stores (they migrate on start) or a
-- one-off `tokenshare migrate` after an upgrade.
CREATE ROLE IF NOT EXISTS tokenshare_admin;
GRANT CREATE, ALTER, DROP, INSERT, SELECT ON tokenshare.* TO tokenshare_admin;
GRANT CREATE DATABASE ON tokenshare.* TO tokenshare_admin;
-- Cluster mode: ON CLUSTER statements need the CLUSTER privilege (servers default to
-- access_control_improvements.on_cluster_queries_require_cluster_grant), and the
-- migration first checks the cluster and this node's macros.
GRANT CLUSTER ON *.* TO tokenshare_admin;
GRANT SELECT ON system.clusters TO tokenshare_admin;
GRANT SELECT ON system.macros TO tokenshare_admin;

CREATE USER IF NOT EXISTS tokenshare_analyst IDENTIFIED WITH sha256_password BY '${TOKENSHARE_ANALYST_PASSWORD}'
    DEFAULT ROLE tokenshare_analyst;
CREATE USER IF NOT EXISTS tokenshare_ingest IDENTIFIED WITH sha256_password BY '${TOKENSHARE_INGEST_PASSWORD}'
    DEFAULT ROLE tokenshare_ingest;
CREATE USER IF NOT EXISTS tokenshare_shares IDENTIFIED WITH sha256_password BY '${TOKENSHARE_SHARES_PASSWORD}'
    DEFAULT ROLE tokenshare_shares;
CREATE USER IF NOT EXISTS tokenshare_admin IDENTIFIED WITH sha256_password BY '${TOKENSHARE_ADMIN_PASSWORD}'
    DEFAULT ROLE tokenshare_admin;
GRANT tokenshare_analyst TO tokenshare_analyst;
GRANT tokenshare_ingest TO tokenshare_ingest;
GRANT tokenshare_shares TO tokenshare_shares;
GRANT tokenshare_admin TO tokenshare_admin;
