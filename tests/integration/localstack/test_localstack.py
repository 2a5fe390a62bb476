"""The local Kafka stack: a real broker starts, takes idempotent writes, serves reads, stops."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tokenshare.localstack import LocalKafka
from tokenshare.processes import free_ports


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/cmdline").read_bytes() != b""  # a zombie has none


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalKafka]:
    port, controller_port = free_ports(2)
    kafka = LocalKafka(tmp_path, port=port, controller_port=controller_port)
    try:
        kafka.start(timeout=120)
        yield kafka
    finally:
        kafka.stop()


def test_broker_round_trip_and_stop(broker: LocalKafka) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    topic = "localstack.roundtrip"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        assert topic in admin.list_topics()
    finally:
        admin.close()

    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap, acks="all", enable_idempotence=True
    )
    try:
        for i in range(100):
            producer.send(topic, key=str(i % 7).encode(), value=f"message-{i}".encode())
        producer.flush(timeout=30)
    finally:
        producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id="localstack-test",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    received: set[bytes] = set()
    deadline = time.monotonic() + 60
    try:
        while len(received) < 100 and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                received.update(r.value for r in records)
        partitions = consumer.partitions_for_topic(topic)
    finally:
        consumer.close()
    assert received == {f"message-{i}".encode() for i in range(100)}
    assert partitions == {0, 1, 2}

    pid = broker.pid()
    assert pid is not None and broker.is_running()
    broker.stop()
    assert not broker.is_running()
    assert not broker.pid_file.exists()
    assert not pid_alive(pid)
    assert not port_open(broker.port)
    assert not port_open(broker.controller_port)
