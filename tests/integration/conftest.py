"""Broker fixtures: one real Kafka broker per test session, unique topics per test, and
tokenshare's own processes running against them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.factories import unique
from tests.pipeline import Pipeline, serving
from tokenshare.localstack import LocalKafka
from tokenshare.processes import free_ports, spawn, stop, wait_until
from tokenshare.settings import Settings
from tokenshare.streams.topics import ensure_topics


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """The session's broker: real Apache Kafka (KRaft) from the project's own stack."""
    port, controller_port = free_ports(2)
    broker = LocalKafka(
        tmp_path_factory.mktemp("kafka"), port=port, controller_port=controller_port
    )
    broker.start(timeout=180)
    yield broker
    broker.stop()


@pytest.fixture
def settings(kafka: LocalKafka, tmp_path: Path) -> Settings:
    """Settings for one test: own topics, own ClickHouse data path, free ports."""
    query_port, web_port, metrics_port = free_ports(3)
    s = Settings(
        home=tmp_path,
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=unique(),
        partitions=4,
        clickhouse_dsn=f"chdb://{tmp_path / 'clickhouse'}",
        store_query_port=query_port,
        store_metrics_port=metrics_port,
        worker_web_port=web_port,
        worker_id=unique("w"),
    )
    ensure_topics(s)
    return s


@pytest.fixture
def pipeline(settings: Settings) -> Iterator[Pipeline]:
    """A running store and worker, the same commands an operator runs."""
    logs = settings.home / "logs"
    store = spawn(settings, ["store"], logs / "store.log")
    wait_until(lambda: serving(settings) or store.poll() is not None, 120, "the store")
    worker = spawn(settings, ["worker"], logs / "worker.log")
    running = Pipeline(settings, store, [worker])
    yield running
    for proc in [*running.workers, running.store]:  # the ones running now, restarts included
        stop(proc)
