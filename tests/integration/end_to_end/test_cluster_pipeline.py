"""Cluster mode end to end on the embedded engine: events -> Kafka -> worker -> store ->
Distributed tables over a cluster -> local tables, and back out through the views.

chDB loads a ClickHouse config given in the DSN (``chdb:///path?config-file=...``):
a <remote_servers> cluster whose one replica is this process (host localhost on the
configured tcp_port, so ``is_local``) makes Distributed tables work in-process, no
server needed. The cluster is sharded but not replicated and migrated per node
(TOKENSHARE_CLICKHOUSE_REPLICATED / _ON_CLUSTER false): chDB has no DDL worker for
ON CLUSTER and no replication (tests/test_cluster_ddl.py parses those forms).

One shard only: ClickHouse treats a replica with its own <default_database> as
remote (Cluster.cpp, "to avoid query rewrite"), and chDB serves no TCP port, so a
second shard cannot live in the same process.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from tests.factories import crossover_alert, event, unique
from tests.pipeline import Pipeline
from tokenshare.localstack import LocalKafka
from tokenshare.processes import free_ports, settings_env, spawn, stop, wait_until
from tokenshare.producers.kafka_producer import EventProducer
from tokenshare.settings import Settings
from tokenshare.sinks.clickhouse import shipped_tables
from tokenshare.sinks.owner import data_path_of, read_owner
from tokenshare.sinks.query import run_query
from tokenshare.streams.topics import ensure_topics

N = 2_000
CLUSTER = "tokenshare"
CHDB_CONFIG = """<clickhouse>
    <!-- Only compared with the replicas' ports: chDB listens on nothing. -->
    <tcp_port>{port}</tcp_port>
    <remote_servers>
        <{cluster}>
            <shard><replica><host>localhost</host><port>{port}</port></replica></shard>
        </{cluster}>
    </remote_servers>
    <macros><shard>01</shard><replica>node-1</replica></macros>
</clickhouse>
"""


@pytest.fixture
def cluster_settings(kafka: LocalKafka, tmp_path: Path) -> Settings:
    config = tmp_path / "chdb.xml"
    config.write_text(CHDB_CONFIG.format(port=free_ports(1)[0], cluster=CLUSTER))
    query_port, web_port = free_ports(2)
    settings = Settings(
        home=tmp_path,
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=unique(),
        partitions=4,
        clickhouse_dsn=f"chdb://{tmp_path / 'clickhouse'}?config-file={config}",
        clickhouse_cluster=CLUSTER,
        clickhouse_replicated=False,
        clickhouse_on_cluster=False,
        store_query_port=query_port,
        worker_web_port=web_port,
        worker_id=unique("w"),
    )
    ensure_topics(settings)
    return settings


@pytest.fixture
def cluster_pipeline(cluster_settings: Settings) -> Iterator[Pipeline]:
    """The schema migrated per node by `tokenshare migrate` (the operator's step without
    distributed DDL), then a store whose inserts lose half their replies (retried with
    the same deduplication token), and a worker."""
    settings = cluster_settings
    out = cli(settings, "migrate")
    assert f"cluster '{CLUSTER}'" in out and "001_raw_events.sql" in out, out
    assert "nothing" in cli(settings, "migrate")  # recorded per node: applied once
    # Seed 15's draws: the first insert's reply is lost (so a retry is certain), and
    # never more than two in a row (no insert gives up after its five attempts).
    faults = {"TOKENSHARE_FAULTS": "store.lose_reply=0.5", "TOKENSHARE_FAULT_SEED": "15"}
    logs = settings.home / "logs"
    store = spawn(settings, ["store"], logs / "store.log", faults)
    wait_until(lambda: serving(settings) or store.poll() is not None, 120, "the store")
    running = Pipeline(settings, store, [spawn(settings, ["worker"], logs / "worker.log")])
    assert store.poll() is None, running.logs()
    yield running
    for proc in [*running.workers, running.store]:
        stop(proc)


def serving(settings: Settings) -> bool:
    # The owner file sits beside the data path, not beside "path?config-file=...".
    owner = read_owner(data_path_of(settings.dsn))
    return owner is not None and owner.query_url is not None


def cli(settings: Settings, *args: str, check: bool = True) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "tokenshare", *args],
        env={**settings_env(settings), "COLUMNS": "400"},  # doctor's table on one line per row
        capture_output=True,
        timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()
    return result.stdout.decode() + result.stderr.decode()


def rows(settings: Settings, sql: str, **parameters: Any) -> list[list[Any]]:
    return run_query(settings, sql, parameters).rows


def test_pipeline_through_distributed_tables(cluster_pipeline: Pipeline) -> None:
    settings = cluster_pipeline.settings
    db = settings.clickhouse_database
    valid = [event(i, seed=11) for i in range(N)]
    with EventProducer(settings) as producer:
        for start in range(0, N, 100):
            producer.send_batch(valid[start : start + 100])
        for doc in valid[:300]:  # the same events again: the event-id guard drops them
            producer.send(doc)
    publish_alert(settings)
    cluster_pipeline.wait_drained()

    # The shape: every table a Distributed table over a local MergeTree table.
    engines = dict(
        rows(settings, "SELECT name, engine FROM system.tables WHERE database = {db:String}", db=db)
    )
    for table in shipped_tables(db):
        assert engines[table] == "Distributed", table
        assert engines[f"{table}_local"].endswith("MergeTree"), table

    # Every event once, stored in the local table, read back through the Distributed one.
    local = rows(settings, f"SELECT count(), uniqExact(event_id) FROM {db}.raw_events_local")
    assert local == [[N, N]], cluster_pipeline.logs()
    assert rows(settings, f"SELECT count() FROM {db}.raw_events") == [[N]]
    expected_tokens = sum(int(e["prompt_tokens"]) + int(e["completion_tokens"]) for e in valid)
    assert rows(settings, f"SELECT sum(total_tokens) FROM {db}.raw_events") == [[expected_tokens]]

    # Inserts lost their replies and were retried with the same token: ClickHouse dropped
    # the repeats (in the tables the views fill too), and nothing was counted twice.
    (dropped,) = rows(
        settings, "SELECT sum(value) FROM system.events WHERE event = 'DuplicatedInsertedBlocks'"
    )[0]
    assert int(dropped) > 0, "no insert was retried: the fault did not fire"
    rollup = rows(
        settings,
        f"SELECT dimension, value, day, sum(tokens), sum(requests), sum(spend_usd) "
        f"FROM {db}.daily_rollup GROUP BY ALL ORDER BY ALL",
    )
    recomputed = rows(
        settings,
        f"SELECT d.1, d.2, day, sum(total_tokens), count(), sum(cost_usd) FROM {db}.raw_events "
        "ARRAY JOIN [('origin_bloc', origin_bloc), ('author', author), "
        "('model', model_canonical), ('category', ifNull(category, 'unidentified'))] AS d "
        "GROUP BY ALL ORDER BY ALL",
    )
    dimensions = {"origin_bloc", "author", "model", "category"}
    assert [r[:5] for r in rollup if r[0] in dimensions] == [r[:5] for r in recomputed]
    for dimension in {r[0] for r in rollup}:  # every dimension sums to every event once
        assert sum(r[3] for r in rollup if r[0] == dimension) == expected_tokens, dimension
        assert sum(r[4] for r in rollup if r[0] == dimension) == N, dimension
    assert rows(settings, f"SELECT sum(rows) FROM {db}.partition_watermarks") == [[N]]

    # The analysts' views, over the Distributed tables.
    weekly = rows(
        settings,
        f"SELECT week, sum(token_share) FROM {db}.weekly_shares "
        "WHERE dimension = 'origin_bloc' GROUP BY week ORDER BY week",
    )
    assert len(weekly) >= 3 and all(abs(share - 1) < 1e-9 for _, share in weekly)
    assert rows(settings, f"SELECT count() > 0 FROM {db}.rolling_shares") == [[True]]
    assert rows(settings, f"SELECT count() > 0 FROM {db}.app_retention") == [[True]]
    # Alerts: the worker's own crossovers and the one sent twice above, one row per alert
    # id (each id's versions sit on one shard, where FINAL replaces them).
    mine = rows(
        settings,
        f"SELECT leader, overtaken, margin_pp FROM {db}.crossovers WHERE alert_id = {{id:String}}",
        id="crossover-cluster-1",
    )
    assert mine == [["China", "US", 1.5]]
    # The worker's share stage reads the day sums (after each stored flush), publishes
    # alerts (on these few random days: baselines and the catalog gap, not crossovers)
    # and snapshots, and the store writes them.
    for table in ("alerts", "share_snapshots"):
        wait_until(
            lambda t=table: rows(settings, f"SELECT count() > 1 FROM {db}.{t}") == [[True]],
            60,
            f"the worker's {table} through the Distributed tables",
        )
    (count, ids) = rows(settings, f"SELECT count(), uniqExact(alert_id) FROM {db}.alerts FINAL")[0]
    assert count == ids

    # doctor sees the cluster and the Distributed schema.
    report = cli(settings, "doctor", check=False)
    (mode,) = [line for line in report.splitlines() if "ClickHouse mode" in line]
    assert "✓" in mode and f"cluster '{CLUSTER}'" in mode, report

    # The same database opened as a single node refuses to go on: tables are never converted.
    for proc in [*cluster_pipeline.workers, cluster_pipeline.store]:
        stop(proc)  # the engine's one owner is then the `migrate` below
    single = settings.model_copy(update={"clickhouse_cluster": ""})
    refused = cli(single, "migrate", check=False)
    assert "does not fit the configured mode" in refused and "raw_events (Distributed)" in refused


def publish_alert(settings: Settings) -> None:
    """A crossover alert as the share stage publishes it, written by the store."""
    alert = {**crossover_alert(), "alert_id": "crossover-cluster-1"}
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    try:
        for _ in range(2):  # redelivered: the ReplacingMergeTree key keeps one
            producer.send(
                settings.alerts_topic, key=alert["alert_id"].encode(), value=orjson.dumps(alert)
            )
        producer.flush()
    finally:
        producer.close()
