"""A worker or store started while the broker is away waits for it, then says what to do."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.factories import unique
from tests.netfault import FaultyLink
from tokenshare.localstack import LocalKafka
from tokenshare.processes import free_ports
from tokenshare.settings import Settings
from tokenshare.streams.topics import KafkaUnavailable, ensure_topics


def test_an_unreachable_broker_is_retried_then_named_with_what_to_do(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (port,) = free_ports(1)
    s = Settings(home=tmp_path, kafka_bootstrap=f"127.0.0.1:{port}", topic_prefix=unique())
    with (
        caplog.at_level(logging.WARNING, logger="tokenshare.topics"),
        pytest.raises(KafkaUnavailable) as caught,
    ):
        ensure_topics(s, wait_s=8.0)
    assert f"cannot reach Kafka at 127.0.0.1:{port}" in str(caught.value)
    assert "tokenshare stack up" in str(caught.value)
    assert any("retrying" in r.getMessage() for r in caplog.records)


def test_topics_are_created_once_the_broker_appears(kafka: LocalKafka, tmp_path: Path) -> None:
    """The broker is reachable only after 2 s (a proxy opened late): the wait bridges it."""
    (proxy_port,) = free_ports(1)
    s = Settings(home=tmp_path, kafka_bootstrap=f"127.0.0.1:{proxy_port}", topic_prefix=unique())
    links: list[FaultyLink] = []
    opener = threading.Timer(2.0, lambda: links.append(FaultyLink(proxy_port, kafka.port)))
    opener.start()
    try:
        created = ensure_topics(s, wait_s=60.0)
    finally:
        opener.join()
        for link in links:
            link.close()
    assert links, "the broker appeared only after the first attempts"
    assert sorted(created) == sorted(
        [
            s.events_topic,
            s.rows_topic,
            s.dlq_topic,
            s.alerts_topic,
            s.shares_topic,
            s.changes_topic,
        ]
    )


def test_the_store_command_exits_with_the_reason_and_the_next_step(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    env = {
        **os.environ,
        "TOKENSHARE_KAFKA_STARTUP_WAIT_S": "1",
        "TOKENSHARE_HOME": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "tokenshare", "--bootstrap", f"127.0.0.1:{port}", "store"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    said = done.stdout + done.stderr
    assert "cannot reach Kafka" in said and "next:" in said, said[-2000:]
