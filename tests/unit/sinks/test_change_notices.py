"""The store's notices to the share stage: in checkpoint order (after the inserts,
before the commit), one per partition of the changes topic, and a failure to
announce handled like a failed write."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError

from tests.unit.sinks.test_checkpoint import ROWS0, FakeConsumer, FakeWriter, decode
from tokenshare.schema.changes import (
    CHANGE_PARTITIONS,
    RollupChange,
    dimensions_of,
    partition_of,
)
from tokenshare.schema.rows import ROW_COLUMNS, RowBatch
from tokenshare.schema.vocabulary import DIMENSIONS
from tokenshare.sinks.changes import ChangeNotices
from tokenshare.sinks.checkpoint import CheckpointLoop, Route
from tokenshare.sinks.clickhouse import StoreError


def make_loop(consumer: FakeConsumer, rows: FakeWriter, announce: Any) -> CheckpointLoop:
    stopped = threading.Event()
    stopped.set()  # a failed flush's pause returns at once
    return CheckpointLoop(
        consumer,
        {"rows": Route(decode, rows.write, size=len)},
        group="g",
        max_rows=1_000,
        max_wait_ms=60_000,
        announce=announce,
        stop_event=stopped,
    )


def test_the_notice_follows_the_inserts_and_precedes_the_commit() -> None:
    consumer = FakeConsumer()
    rows = FakeWriter(consumer)
    seen: list[tuple[list[str], dict[Any, int], dict[str, list[Any]]]] = []

    def announce(flushed: Mapping[str, list[Any]]) -> None:
        seen.append((list(rows.stored), dict(consumer.committed), dict(flushed)))

    loop = make_loop(consumer, rows, announce)
    consumer.produce(ROWS0, b"a", b"b")
    loop.poll_once()
    loop.flush()
    assert seen == [(["a", "b"], {}, {"rows": ["a", "b"]})]  # stored, not yet committed
    assert consumer.committed == {ROWS0: 2}


def test_a_failed_notice_commits_nothing_and_the_flush_is_read_again() -> None:
    consumer = FakeConsumer()
    rows = FakeWriter(consumer)
    failures = [StoreError("broker away")]
    announced: list[dict[str, list[Any]]] = []

    def announce(flushed: Mapping[str, list[Any]]) -> None:
        if failures:
            raise failures.pop()
        announced.append(dict(flushed))

    loop = make_loop(consumer, rows, announce)
    consumer.produce(ROWS0, b"a")
    loop.poll_once()
    loop.flush()
    assert consumer.committed == {} and loop.backoff.failures == 1
    loop.poll_once()
    loop.flush()
    assert rows.stored == ["a", "a"]  # the writer's guards drop the repeat
    assert announced == [{"rows": ["a"]}] and consumer.committed == {ROWS0: 1}


@dataclass
class Sent:
    error: Exception | None = None

    def get(self, timeout: float) -> None:
        if self.error is not None:
            raise self.error


@dataclass
class FakeProducer:
    """What ChangeNotices uses of a kafka-python KafkaProducer."""

    partitions: int = CHANGE_PARTITIONS
    fail: bool = False
    sent: list[tuple[str, bytes, bytes, int]] = field(default_factory=list)
    flushed: int = 0

    def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def send(self, topic: str, value: bytes, key: bytes, partition: int) -> Sent:
        self.sent.append((topic, key, value, partition))
        return Sent(KafkaTimeoutError("no ack") if self.fail else None)

    def flush(self, timeout: float) -> None:
        self.flushed += 1


def batch(*ts_ms: int) -> RowBatch:
    columns: dict[str, list[Any]] = {c: [None] * len(ts_ms) for c in ROW_COLUMNS}
    columns["ts"] = list(ts_ms)
    return RowBatch("events", 0, columns)


DAY_MS = 86_400_000


def test_one_notice_per_partition_naming_its_dimensions_and_the_days() -> None:
    producer = FakeProducer()
    notices = ChangeNotices(producer, "changes", "rows")
    jan_5 = date(2026, 1, 5)
    first_ms = (jan_5 - date(1970, 1, 1)).days * DAY_MS + 1000
    notices({"rows": [batch(first_ms + 2 * DAY_MS), batch(first_ms)], "alerts": ["x"]})
    assert producer.flushed == 1
    assert [p for *_, p in producer.sent] == list(range(CHANGE_PARTITIONS))
    assert {k.decode() for _, k, _, _ in producer.sent} == set(DIMENSIONS)
    decoded = [RollupChange.decode(v) for _, _, v, _ in producer.sent]
    assert {(n.reason, n.first_day, n.last_day) for n in decoded} == {
        ("rows", jan_5, date(2026, 1, 7))
    }
    assert len({n.flush for n in decoded}) == 1  # one id for the whole flush
    notices({"rows": [batch(first_ms)]})
    assert RollupChange.decode(producer.sent[-1][2]).flush != decoded[0].flush


def test_a_flush_without_rows_announces_nothing() -> None:
    producer = FakeProducer()
    notices = ChangeNotices(producer, "changes", "rows")
    notices({"alerts": ["x"], "shares": ["y"]})
    notices({"rows": [batch()]})  # an empty batch (every row a replay)
    assert producer.sent == []


def test_an_unacknowledged_notice_is_a_store_error() -> None:
    producer = FakeProducer(fail=True)
    notices = ChangeNotices(producer, "changes", "rows")
    with pytest.raises(StoreError, match="not acknowledged"):
        notices({"rows": [batch(0)]})


def test_every_dimension_has_a_partition_of_its_own_and_other_keys_a_stable_one() -> None:
    assert sorted(partition_of(d) for d in DIMENSIONS) == list(range(CHANGE_PARTITIONS))
    assert all(dimensions_of(partition_of(d)) == (d,) for d in DIMENSIONS)
    assert 0 <= partition_of("catalog_gap") < CHANGE_PARTITIONS
    # With fewer partitions (a topic made smaller by hand) dimensions share them.
    assert {partition_of(d, 4) for d in DIMENSIONS} == {0, 1, 2, 3}
