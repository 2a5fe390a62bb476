"""The store's loop with a fake consumer and fake writers: checkpoint order,
routing by topic, re-reading after a failed write, and rebalances."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata

from tokenshare.sinks.checkpoint import (
    BEHIND_MESSAGES,
    BEHIND_WAIT_FACTOR,
    CheckpointLoop,
    Route,
    behind,
    flush_due,
)
from tokenshare.sinks.clickhouse import StoreError

ROWS0, ROWS1, ALERTS0 = (
    TopicPartition("rows", 0),
    TopicPartition("rows", 1),
    TopicPartition("alerts", 0),
)


@dataclass
class Record:
    offset: int
    value: bytes


@dataclass
class FakeConsumer:
    """Serves queued records from per-partition positions, as a consumer does.

    ``stalled`` makes it return nothing, as kafka-python did with partitions it
    had left marked for revocation, until it subscribes again.
    """

    log: dict[TopicPartition, list[bytes]] = field(default_factory=dict)
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    topics: list[str] = field(default_factory=list)
    listener: ConsumerRebalanceListener | None = None
    assigned: set[TopicPartition] = field(default_factory=set)
    stalled: bool = False
    subscriptions: int = 0

    def produce(self, tp: TopicPartition, *values: bytes) -> None:
        self.log.setdefault(tp, []).extend(values)
        self.assigned.add(tp)

    def subscribe(self, topics: list[str], listener: ConsumerRebalanceListener) -> None:
        self.topics, self.listener = topics, listener
        self.subscriptions += 1

    def unsubscribe(self) -> None:
        self.positions.clear()  # a fresh subscription starts from the last commit
        self.stalled = False

    def poll(self, timeout_ms: int, max_records: int) -> Mapping[TopicPartition, list[Any]]:
        out: dict[TopicPartition, list[Any]] = {}
        if self.stalled:
            return out
        for tp, values in self.log.items():
            start = self.next_offset(tp)
            if start < len(values):
                out[tp] = [Record(o, values[o]) for o in range(start, len(values))]
                self.positions[tp] = len(values)
        return out

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def next_offset(self, tp: TopicPartition) -> int:
        return self.positions.get(tp, self.committed.get(tp, 0))

    def position(self, partition: TopicPartition, timeout_ms: int | None = None) -> int:
        return self.next_offset(partition)

    def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.log.get(tp, [])) for tp in partitions}

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.positions[partition] = offset

    def highwater(self, partition: TopicPartition) -> int | None:
        return len(self.log[partition]) if partition in self.log else None

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        self.committed.update({tp: meta.offset for tp, meta in offsets.items()})


@dataclass
class FakeWriter:
    """Stores what it is given; fails the next `failures` writes."""

    consumer: FakeConsumer
    stored: list[str] = field(default_factory=list)
    committed_at_write: list[dict[TopicPartition, int]] = field(default_factory=list)
    failures: int = 0

    def write(self, items: list[str]) -> None:
        self.committed_at_write.append(dict(self.consumer.committed))
        if self.failures:
            self.failures -= 1
            raise StoreError("ClickHouse unavailable")
        self.stored.extend(items)


def decode(value: bytes) -> str:
    if not value.isascii():
        raise ValueError("not a message of ours")
    return value.decode()


@pytest.fixture
def consumer() -> FakeConsumer:
    return FakeConsumer()


def make_loop(
    consumer: FakeConsumer, stall_s: float = 3600.0, **writers: FakeWriter
) -> CheckpointLoop:
    stopped = threading.Event()
    stopped.set()  # a failed write's pause returns at once
    return CheckpointLoop(
        consumer,
        {topic: Route(decode, w.write, size=len) for topic, w in writers.items()},
        group="g",
        max_rows=1_000,
        max_wait_ms=60_000,
        stop_event=stopped,
        stall_s=stall_s,
        stall_check_s=0.0,
    )


def test_offsets_are_committed_only_after_the_write(consumer: FakeConsumer) -> None:
    rows = FakeWriter(consumer)
    loop = make_loop(consumer, rows=rows)
    assert consumer.topics == ["rows"]
    consumer.produce(ROWS0, b"a", b"b")
    consumer.produce(ROWS1, b"c")
    loop.poll_once()
    loop.flush()
    assert rows.stored == ["a", "b", "c"]
    assert rows.committed_at_write == [{}]  # nothing committed before the rows were stored
    assert consumer.committed == {ROWS0: 2, ROWS1: 1}  # the next offset to read


def test_each_topic_goes_to_its_own_writer(consumer: FakeConsumer) -> None:
    rows, alerts = FakeWriter(consumer), FakeWriter(consumer)
    loop = make_loop(consumer, rows=rows, alerts=alerts)
    consumer.produce(ROWS0, b"row")
    consumer.produce(ALERTS0, b"alert")
    loop.poll_once()
    loop.flush()
    assert (rows.stored, alerts.stored) == (["row"], ["alert"])
    assert consumer.committed == {ROWS0: 1, ALERTS0: 1}


def test_a_failed_write_commits_nothing_and_reads_again(consumer: FakeConsumer) -> None:
    rows, alerts = FakeWriter(consumer), FakeWriter(consumer, failures=1)
    loop = make_loop(consumer, rows=rows, alerts=alerts)
    consumer.produce(ROWS0, b"a")
    consumer.produce(ALERTS0, b"x")
    loop.poll_once()
    loop.flush()
    assert consumer.committed == {}  # the rows were stored, but the alert was not
    assert loop.backoff.failures == 1
    loop.poll_once()  # both partitions are read again from their first pending offsets
    loop.flush()
    assert rows.stored == ["a", "a"]  # the writer's guards make the repeat harmless
    assert alerts.stored == ["x"]
    assert consumer.committed == {ROWS0: 1, ALERTS0: 1} and loop.backoff.failures == 0


def test_an_unreadable_message_is_counted_and_does_not_block(consumer: FakeConsumer) -> None:
    rows = FakeWriter(consumer)
    loop = make_loop(consumer, rows=rows)
    consumer.produce(ROWS0, b"a", "é".encode(), b"c")
    loop.poll_once()
    loop.flush()
    assert rows.stored == ["a", "c"] and loop.unreadable == 1
    assert consumer.committed == {ROWS0: 3}


def test_enough_rows_flush_at_once(consumer: FakeConsumer) -> None:
    rows = FakeWriter(consumer)
    loop = make_loop(consumer, rows=rows)
    loop.max_rows = 4  # counted by size (here: characters)
    consumer.produce(ROWS0, b"ab")
    loop.poll_once()
    assert rows.stored == []
    consumer.produce(ROWS0, b"cd")
    loop.poll_once()
    assert rows.stored == ["ab", "cd"] and consumer.committed == {ROWS0: 2}


def test_a_rebalance_writes_nothing_on_the_io_thread_and_re_reads_what_stays(
    consumer: FakeConsumer,
) -> None:
    rows = FakeWriter(consumer)
    loop = make_loop(consumer, rows=rows)
    assigned: list[bool] = []
    loop.on_assigned = lambda: assigned.append(True)
    consumer.produce(ROWS0, b"a")
    consumer.produce(ROWS1, b"b")
    loop.poll_once()
    assert consumer.listener is not None
    consumer.listener.on_partitions_revoked([ROWS0, ROWS1])
    consumer.assigned = {ROWS0}  # ROWS1 moved to another store
    consumer.listener.on_partitions_assigned([ROWS0])
    # The listener (kafka-python's IO thread) only notes the rebalance.
    assert rows.stored == [] and assigned == [] and consumer.committed == {}
    loop.poll_once()  # the poll loop drops what it held and seeks ROWS0 back
    assert assigned == [True] and consumer.positions[ROWS0] == 0
    loop.poll_once()
    loop.flush()
    assert rows.stored == ["a"]  # ROWS1's "b" is its new owner's to store
    assert consumer.committed == {ROWS0: 1}


def test_a_consumer_that_stops_fetching_subscribes_again_and_reads_on(
    consumer: FakeConsumer,
) -> None:
    rows = FakeWriter(consumer)
    loop = make_loop(consumer, stall_s=0.0, rows=rows)  # every poll is a check
    consumer.produce(ROWS0, b"a")
    loop.poll_once()
    loop.flush()
    consumer.produce(ROWS0, b"b")
    consumer.produce(ROWS1, b"c")
    for _ in range(3):  # all read, or nothing more to read: no reason to subscribe again
        loop.poll_once()
    loop.flush()
    assert consumer.subscriptions == 1 and rows.stored == ["a", "b", "c"]
    consumer.produce(ROWS1, b"d")
    consumer.stalled = True  # the client stops fetching with "d" unread
    loop.poll_once()
    assert consumer.subscriptions == 1  # suspect: "d" could have arrived a moment ago
    loop.poll_once()
    assert consumer.subscriptions == 2 and loop.resubscribed == 1
    loop.poll_once()
    loop.flush()
    assert rows.stored == ["a", "b", "c", "d"]
    assert consumer.committed == {ROWS0: 2, ROWS1: 2}


def test_an_insert_behind_the_topics_waits_longer_to_fill_but_never_past_full() -> None:
    wait = 500
    # caught up: rows wait max_wait_ms at most
    assert not flush_due(10, wait - 1, False, 1_000, wait)
    assert flush_due(10, wait, False, 1_000, wait)
    # behind: the insert fills for longer ...
    assert not flush_due(10, wait, True, 1_000, wait)
    assert not flush_due(10, wait * BEHIND_WAIT_FACTOR - 1, True, 1_000, wait)
    assert flush_due(10, wait * BEHIND_WAIT_FACTOR, True, 1_000, wait)
    # ... and a full insert goes at once either way
    assert flush_due(1_000, 0, True, 1_000, wait)
    assert flush_due(1_000, 0, False, 1_000, wait)


def test_the_store_is_behind_when_a_partition_it_read_holds_many_unread_messages() -> None:
    consumer = FakeConsumer()
    consumer.produce(ROWS0, *[b"r"] * (BEHIND_MESSAGES + 10))
    consumer.produce(ROWS1, b"r")
    read_all = consumer.poll(100, 500)
    assert not behind(consumer, read_all)
    # read 10 of ROWS0's messages: the rest (BEHIND_MESSAGES) are still unread
    first_ten = {ROWS0: read_all[ROWS0][:10], ROWS1: read_all[ROWS1]}
    assert behind(consumer, first_ten)
    # one fewer unread message than that is keeping up
    assert not behind(consumer, {ROWS0: read_all[ROWS0][:11]})
    assert not behind(consumer, {})
