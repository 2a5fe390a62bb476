"""Cluster mode's DDL (sinks/cluster.py): every shipped migration rendered for a cluster,
checked by ClickHouse's own parser and for the shape a cluster needs.

The embedded engine cannot run ON CLUSTER or Replicated* tables (no DDL worker, no
replication in chDB), so this layer parses the full cluster form with ClickHouse's
parser (formatQuery) and asserts its structure on the parser's normalised output;
tests/test_cluster_pipeline.py runs the sharded, per-node form for real.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
import yaml
from clickhouse_connect.driver.client import Client

from tests.paths import DEPLOY
from tokenshare.settings import Settings
from tokenshare.sinks.clickhouse import (
    StoreError,
    connect,
    migrate,
    schema_statements,
    shipped_tables,
    split_chdb_dsn,
)
from tokenshare.sinks.cluster import (
    REPLICA_NAME,
    REPLICA_PATH,
    SHARDING_KEYS,
    Cluster,
    ClusterRenderError,
    bookkeeping_table,
    create_database,
    render,
)
from tokenshare.sinks.owner import data_path_of

DB = "tokenshare"
TABLES = shipped_tables(DB)
FULL = Cluster("tokenshare")  # the defaults: replicated, ON CLUSTER
MODES = {
    "replicated-on-cluster": FULL,
    "replicated-per-node": Cluster("tokenshare", on_cluster=False),
    "sharded-on-cluster": Cluster("tokenshare", replicated=False),
    "sharded-per-node": Cluster("tokenshare", replicated=False, on_cluster=False),
}


def single_node() -> list[str]:
    return [st for _, sts in schema_statements(DB) for st in sts]


def rendered(cluster: Cluster) -> list[str]:
    """Everything `migrate` runs on a fresh cluster, in order."""
    out = [create_database(DB, cluster), bookkeeping_table(DB, cluster)]
    return out + [r for st in single_node() for r in render(st, DB, cluster, TABLES)]


def parsed(client: Client, statements: list[str]) -> list[str]:
    """ClickHouse's parser's normalised text of each statement (raises on a syntax error)."""
    return [
        " ".join(
            client.query("SELECT formatQuery({q:String})", parameters={"q": s})
            .result_rows[0][0]
            .split()
        )
        for s in statements
    ]


@pytest.fixture(scope="module")
def full_form(ch_client: Client) -> list[str]:
    return parsed(ch_client, rendered(FULL))


def creates(statements: list[str], name: str) -> str:
    (found,) = [s for s in statements if re.match(rf"CREATE TABLE IF NOT EXISTS {DB}\.{name} ", s)]
    return found


# --- single node: today's behaviour, unchanged ------------------------------------------------


def test_single_node_statements_are_exactly_the_shipped_ones() -> None:
    assert all(render(st, DB, None, TABLES) == [st] for st in single_node())
    assert create_database(DB, None) == f"CREATE DATABASE IF NOT EXISTS {DB}"
    assert bookkeeping_table(DB, None) == (
        f"CREATE TABLE IF NOT EXISTS {DB}.schema_migrations "
        "(name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = MergeTree ORDER BY name"
    )
    assert set(SHARDING_KEYS) == TABLES  # every shipped table has its key, no stale keys


# --- the cluster form, parsed by ClickHouse ---------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_every_statement_parses_and_carries_on_cluster_iff_asked(
    ch_client: Client, mode: str
) -> None:
    cluster = MODES[mode]
    for text in parsed(ch_client, rendered(cluster)):
        assert ("ON CLUSTER tokenshare" in text) == cluster.on_cluster, text[:200]
        engines = re.findall(r"ENGINE = (\w+)", text)
        if not cluster.replicated:  # sharded only: plain engines under Distributed
            assert not any(
                e.startswith("Replicated") for e in engines if "schema_migrations" not in text
            )


def test_every_table_is_a_replicated_local_table_under_a_distributed_table(
    full_form: list[str],
) -> None:
    originals = {
        m[1]: m[2]
        for st in single_node()
        if (m := re.search(rf"CREATE TABLE IF NOT EXISTS {DB}\.(\w+).*ENGINE = (\w+)", st, re.S))
    }
    assert set(originals) == TABLES
    for table, engine in originals.items():
        local = creates(full_form, f"{table}_local")
        assert f"ENGINE = Replicated{engine}('{REPLICA_PATH}', '{REPLICA_NAME}'" in local
        distributed = creates(full_form, table)
        assert distributed == (
            f"CREATE TABLE IF NOT EXISTS {DB}.{table} ON CLUSTER tokenshare AS {DB}.{table}_local "
            f"ENGINE = Distributed('tokenshare', '{DB}', '{table}_local', {SHARDING_KEYS[table]})"
        )
    # No plain MergeTree anywhere, and no non-replicated setting on a replicated table.
    text = "\n".join(full_form)
    engines = set(re.findall(r"ENGINE = (\w+)", text))
    assert all(re.fullmatch(r"Replicated\w*MergeTree|Distributed", e) for e in engines), engines
    assert "non_replicated_deduplication_window" not in text
    assert "SETTINGS replicated_deduplication_window = 10000" in creates(
        full_form, "raw_events_local"
    )
    # The version columns of ReplacingMergeTree follow the replica path and name.
    assert f"'{REPLICA_NAME}', fired_at)" in creates(full_form, "alerts_local")
    # The projection the event-id guard uses stays on the local table.
    assert "PROJECTION by_event_id" in creates(full_form, "raw_events_local")


def test_bookkeeping_is_cluster_wide_with_on_cluster_and_per_node_without() -> None:
    wide = bookkeeping_table(DB, FULL)
    # One replica per node of every shard: no {shard} in the Keeper path.
    assert (
        "ReplicatedMergeTree('/clickhouse/tables/cluster-wide/tokenshare/{database}/{table}'"
        in wide
    )
    assert "'{shard}-{replica}'" in wide and "ON CLUSTER 'tokenshare'" in wide
    for per_node in (MODES["replicated-per-node"], MODES["sharded-per-node"]):
        assert bookkeeping_table(DB, per_node) == bookkeeping_table(DB, None)


def test_materialized_views_read_and_write_the_local_tables(full_form: list[str]) -> None:
    views = [s for s in full_form if s.startswith("CREATE MATERIALIZED VIEW")]
    assert len(views) == len([s for s in single_node() if "MATERIALIZED VIEW" in s]) >= 2
    for view in views:
        target = re.search(rf" TO {DB}\.(\w+) ", view)
        assert target and target[1].endswith("_local") and target[1][: -len("_local")] in TABLES
        (source,) = set(re.findall(rf"\b{DB}\.(\w+)", view.split(" AS ", 1)[1]))
        assert source.endswith("_local") and source[: -len("_local")] in TABLES, view[:120]


def test_plain_views_and_drops_only_gain_on_cluster(full_form: list[str]) -> None:
    for original in single_node():
        if original.startswith(("CREATE VIEW", "DROP VIEW")):
            (out,) = render(original, DB, FULL, TABLES)
            assert out.replace(" ON CLUSTER 'tokenshare'", "", 1) == original


def altered(statement: str) -> str:
    m = re.match(rf"ALTER TABLE {DB}\.(\w+)\s", statement)
    assert m, statement
    return m[1]


def test_alters_reach_the_right_tables(full_form: list[str]) -> None:
    alters = [st for st in single_node() if st.startswith("ALTER TABLE")]
    assert len(alters) >= 3  # 007 adds a column, 008 sets two deduplication windows
    for original in alters:
        table = altered(original)
        out = render(original, DB, FULL, TABLES)
        if re.search(r"\bCOLUMN\b", original):
            # The local tables first: the Distributed table must not name a column they lack.
            assert [altered(o) for o in out] == [f"{table}_local", table]
        else:  # settings belong to the storage engine: the local table only
            assert [altered(o) for o in out] == [f"{table}_local"]
    settings = [s for s in full_form if "MODIFY SETTING" in s]
    assert settings and all("replicated_deduplication_window = 10000" in s for s in settings)
    # Not replicated: the engines keep their own (non-replicated) setting.
    sharded = [r for st in alters for r in render(st, DB, MODES["sharded-per-node"], TABLES)]
    assert sum("non_replicated_deduplication_window" in s for s in sharded) == sum(
        "non_replicated_deduplication_window" in s for s in alters
    )


def test_sharding_keys_keep_what_must_meet_on_one_shard(ch_client: Client, migrated: str) -> None:
    assert SHARDING_KEYS["raw_events"] == "cityHash64(event_id)"  # an event id's repeats meet
    for table, key in SHARDING_KEYS.items():
        assert not re.search(r"rand|now|today|generate|uuid", key, re.I), f"{table}: {key}"
    # ReplacingMergeTree: every version of a key on one shard, where FINAL merges them,
    # so the sharding key uses only columns of the replacing key (ORDER BY).
    replacing = 0
    for st in single_node():
        m = re.search(
            rf"TABLE IF NOT EXISTS {DB}\.(\w+).*ReplacingMergeTree.*ORDER BY \(([^)]*)\)", st, re.S
        )
        if m:
            replacing += 1
            key_columns = SHARDING_KEYS[m[1]].removeprefix("cityHash64(").removesuffix(")")
            assert {c.strip() for c in key_columns.split(",")} <= {
                c.strip() for c in m[2].split(",")
            }
    assert replacing >= 2  # alerts, share_snapshots: the pattern found them
    # Each key is an integer expression over the table's real columns (Distributed needs one).
    for table, key in SHARDING_KEYS.items():
        (column,) = ch_client.query(
            f"DESCRIBE (SELECT {key} AS k FROM {migrated}.{table})"
        ).result_rows
        assert column[1] == "UInt64", table


# --- a statement without a rule fails loudly ---------------------------------------------------

UNHANDLED = {
    what: sql.replace("{db}", DB)
    for what, sql in {
        "table without a sharding key": "CREATE TABLE {db}.new (x UInt8) ENGINE = MergeTree",
        "engine outside the MergeTree family": "CREATE TABLE {db}.alerts (x UInt8) ENGINE = Log",
        "two engines": "CREATE TABLE {db}.alerts (x UInt8) ENGINE = Log COMMENT 'ENGINE = Log'",
        "insert": "INSERT INTO {db}.alerts SELECT * FROM {db}.alerts",
        "partition action": "ALTER TABLE {db}.raw_events DROP PARTITION 202601",
        "mixed actions": "ALTER TABLE {db}.alerts ADD COLUMN x UInt8, MODIFY SETTING a = 1",
        "alter of a view": "ALTER TABLE {db}.weekly_shares ADD COLUMN x UInt8",
        "view joining two tables": (
            "CREATE MATERIALIZED VIEW {db}.mv TO {db}.daily_rollup AS "
            "SELECT * FROM {db}.raw_events JOIN {db}.alerts USING (day)"
        ),
        "view writing a view": (
            "CREATE MATERIALIZED VIEW {db}.mv TO {db}.weekly_shares AS SELECT * FROM {db}.alerts"
        ),
        "view without TO": (
            "CREATE MATERIALIZED VIEW {db}.mv ENGINE = MergeTree ORDER BY x AS SELECT 1 AS x"
        ),
        "drop table": "DROP TABLE IF EXISTS {db}.alerts",
        "already clustered": "CREATE VIEW {db}.v ON CLUSTER 'c' AS SELECT 1",
        "already replicated": "CREATE TABLE {db}.alerts (x UInt8) ENGINE = ReplicatedMergeTree",
        "other database": "CREATE VIEW other.v AS SELECT 1",
    }.items()
}


@pytest.mark.parametrize("what", UNHANDLED)
def test_a_statement_without_a_rule_fails_loudly(what: str) -> None:
    with pytest.raises(ClusterRenderError, match=r"sinks/cluster\.py") as err:
        render(UNHANDLED[what], DB, FULL, TABLES)
    assert " ".join(UNHANDLED[what].split())[:40] in str(err.value)  # names the statement
    assert render(UNHANDLED[what], DB, None, TABLES) == [UNHANDLED[what]]  # single node: as is


def test_migrate_refuses_a_cluster_the_server_does_not_define(
    ch_client: Client, database: str
) -> None:
    with pytest.raises(StoreError, match="cluster 'nowhere' is not defined"):
        migrate(ch_client, database, Cluster("nowhere"))
    # Checked before anything is created.
    assert not ch_client.query(
        f"SELECT 1 FROM system.databases WHERE name = '{database}'"
    ).result_rows


# --- settings and DSN -------------------------------------------------------------------------


def test_cluster_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Cluster.of(Settings()) is None  # default: single node
    monkeypatch.setenv("TOKENSHARE_CLICKHOUSE_CLUSTER", "prod-cluster_1")
    monkeypatch.setenv("TOKENSHARE_CLICKHOUSE_ON_CLUSTER", "false")
    assert Cluster.of(Settings()) == Cluster("prod-cluster_1", replicated=True, on_cluster=False)
    monkeypatch.setenv("TOKENSHARE_CLICKHOUSE_REPLICATED", "0")
    assert Cluster.of(Settings()) == Cluster("prod-cluster_1", replicated=False, on_cluster=False)
    for bad in ("it's", "a b", "{cluster}", "1st", "x" * 101):
        with pytest.raises(ValueError, match="clickhouse_cluster"):
            Settings(clickhouse_cluster=bad)


def test_chdb_dsn_query_is_engine_options_not_part_of_the_path() -> None:
    dsn = "chdb:///var/lib/tokenshare/ch?config-file=/etc/tokenshare/chdb.xml&log-level=warning"
    assert split_chdb_dsn(dsn) == (
        "chdb:///var/lib/tokenshare/ch",
        {"config-file": "/etc/tokenshare/chdb.xml", "log-level": "warning"},
    )
    assert str(data_path_of(dsn)) == "/var/lib/tokenshare/ch"
    assert split_chdb_dsn("chdb:///data") == ("chdb:///data", {})


def test_connect_pins_foreground_inserts_on_writing_sessions_only(chdb_path: object) -> None:
    dsn = f"chdb://{chdb_path}"
    query = "SELECT getSetting('distributed_foreground_insert')"
    writer = connect(dsn, cluster=FULL)
    reader = connect(dsn, readonly=True, cluster=FULL)
    single = connect(dsn)
    try:
        assert writer.query(query).result_rows == [(True,)]
        assert reader.query(query).result_rows == [(False,)]
        assert single.query(query).result_rows == [(False,)]
    finally:
        for client in (writer, reader, single):
            client.close()


# --- deploy: the compose stack's cluster is one its server defines -----------------------------


def test_compose_cluster_is_defined_by_the_server_config() -> None:
    compose = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
    cluster = Cluster.of(Settings(**_settings_from(compose["x-tokenshare-env"])))
    assert cluster is not None and cluster.replicated and cluster.on_cluster
    server = ET.parse(DEPLOY / "clickhouse" / "server" / "config.d" / "tokenshare.xml").getroot()
    defined = server.find(f"remote_servers/{cluster.name}")
    assert defined is not None, f"cluster {cluster.name} is not in the server's <remote_servers>"
    shards = defined.findall("shard")
    # Replicated local tables: Distributed writes one replica per shard, replication the rest.
    assert shards and all(s.findtext("internal_replication") == "true" for s in shards)
    replicas = {(r.findtext("host"), r.findtext("port")) for s in shards for r in s.iter("replica")}
    assert ("clickhouse", "9000") in replicas  # the compose service, on the native port
    macros = server.find("macros")
    assert macros is not None and {m.tag for m in macros} >= {"shard", "replica"}
    assert server.find("zookeeper/node") is not None  # Replicated tables and ON CLUSTER
    roles = (DEPLOY / "clickhouse" / "roles.sql").read_text()
    assert "GRANT CLUSTER ON *.* TO tokenshare_admin;" in roles


def _settings_from(env: dict[str, object]) -> dict[str, object]:
    prefix = "TOKENSHARE_"
    return {k.removeprefix(prefix).lower(): v for k, v in env.items() if "${" not in str(v)}
