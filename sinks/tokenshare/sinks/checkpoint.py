"""The store's loop: poll the topics, write what was read, then commit its offsets.

Checkpoint order, the one rule everything else relies on:

    poll  ->  insert into ClickHouse (idempotent)  ->  announce (acked)  ->  commit offsets

A crash anywhere replays from the last commit and the writers' guards drop
what was already stored. The announcement (``sinks.changes``: which dimensions
and days changed, for the share stage) follows the inserts, so it never
precedes the rows it names, and precedes the commit, so a crash repeats it
rather than losing it. Offsets are committed only once every message read
up to them is stored; a write that fails sends the consumer back to the first
offsets not stored, to read them again after a pause. A rebalance writes
nothing: what is pending is dropped, a partition that moved is re-read by its
new owner from the last commit, and one that stays is sought back and read again.
A consumer that stops fetching a partition it owns (``sinks.stall``) subscribes
afresh, which is a rebalance of its own.

Which topic goes to which writer is a mapping, topic -> :class:`Route`, given
by whoever wires the store (``sinks.store``); the loop knows no topic names.
"""

from __future__ import annotations

import faulthandler
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from kafka import TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from tokenshare.faults import crash_point
from tokenshare.retry import Backoff, RetryPolicy
from tokenshare.sinks.clickhouse import StoreError, disk_full
from tokenshare.sinks.stall import CHECK_S, STALL_S, Positions, StallWatch, Stuck

log = logging.getLogger("tokenshare.store")

T = TypeVar("T")

#: Pauses before re-reading after a failed write, and between commit retries.
FLUSH_RETRY = RetryPolicy(first_s=1.0, max_s=10.0)
COMMIT_RETRY = RetryPolicy(first_s=1.0, max_s=10.0)

#: While the store is behind (a partition it just read from still holds at least
#: BEHIND_MESSAGES unread messages), a flush waits up to this many times `max_wait_ms`
#: to fill its insert: ClickHouse's CPU per row falls with the insert's size (into
#: raw_events, about 27 µs at 50,000 rows, 20 at 100,000), and rows read behind are
#: late already. Caught up, rows wait `max_wait_ms` at most (freshness).
BEHIND_WAIT_FACTOR = 4
#: Far above the few messages that reach a partition between a fetch and its poll
#: under steady load, so a store keeping up never counts as behind.
BEHIND_MESSAGES = 50

#: A turn of the loop that takes longer than this is a hang (in a client library or a
#: ClickHouse call): every thread's stack then goes to stderr, for the bug report.
HUNG_S = 60.0


class Consumer(Positions, Protocol):
    """What the loop uses of a kafka-python KafkaConsumer (tests give a fake)."""

    def subscribe(self, topics: list[str], listener: ConsumerRebalanceListener) -> None: ...
    def unsubscribe(self) -> None: ...
    def poll(self, timeout_ms: int, max_records: int) -> Mapping[TopicPartition, list[Any]]: ...
    def seek(self, partition: TopicPartition, offset: int) -> None: ...
    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None: ...
    def highwater(self, partition: TopicPartition) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Route(Generic[T]):
    """How the messages of one topic are read and stored.

    ``write`` takes every message of a flush at once and raises StoreError when
    they could not all be stored; it must be idempotent (it sees replays).
    ``size`` is what a message counts towards ``max_rows``.
    """

    decode: Callable[[bytes], T]
    write: Callable[[list[T]], object]
    size: Callable[[T], int] = lambda _: 1


@dataclass(slots=True)
class _Pending:
    items: dict[TopicPartition, list[Any]] = field(default_factory=dict)  # decoded messages
    offsets: dict[TopicPartition, int] = field(default_factory=dict)  # next to commit
    first: dict[TopicPartition, int] = field(default_factory=dict)  # where to re-read from
    rows: int = 0
    since: float = field(default_factory=time.monotonic)

    def by_topic(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for tp, items in self.items.items():
            out.setdefault(tp.topic, []).extend(items)
        return out


@dataclass(slots=True)
class _Rebalances:
    """What the consumer's rebalance listener saw, for the poll loop to act on.

    kafka-python 3 calls the listener on its IO thread, which also serves every
    fetch and heartbeat; work done there (a ClickHouse write, a produce) holds
    all of them up, and a blocking consumer call there raises. So the listener
    only notes what happened, and the poll loop acts on it after the poll returns.
    """

    lock: threading.Lock = field(default_factory=threading.Lock)
    revoked: bool = False
    assigned: bool = False

    def take(self) -> tuple[bool, bool]:
        with self.lock:
            seen, self.revoked, self.assigned = (self.revoked, self.assigned), False, False
        return seen


class Commits:
    """Offsets whose rows are stored, kept until a commit of them succeeds.

    A failed commit loses nothing (the rows are stored; a re-read is dropped by the
    writer's guards), but dropping its offsets would leave the group's lag up
    until more rows happen to arrive on those partitions, and for a partition's
    last rows that is never. So they are kept and the commit retried, with backoff.
    """

    def __init__(self, consumer: Consumer, group: str) -> None:
        self.consumer = consumer
        self.group = group
        self.offsets: dict[TopicPartition, int] = {}  # next offset to commit
        self.backoff = Backoff(COMMIT_RETRY)  # counts consecutive failed commits
        self.retry_at = 0.0
        self.failing_since = 0.0
        self.warned = 0.0

    def add(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            # max: after a rebalance a partition is re-read from its last commit,
            # and those replays must not move a stored position back.
            self.offsets[tp] = max(offset, self.offsets.get(tp, 0))

    def due(self) -> bool:
        return bool(self.offsets) and time.monotonic() >= self.retry_at

    def commit(self) -> bool:
        """Commit what is kept, for the partitions still assigned; True if done."""
        assigned = self.consumer.assignment()
        # A partition that moved to another store is re-read by its new owner from
        # the last commit; committing it from here would race that owner.
        self.offsets = {tp: o for tp, o in self.offsets.items() if tp in assigned}
        if not self.offsets:
            return True
        try:
            self.consumer.commit(
                {tp: OffsetAndMetadata(o, "", -1) for tp, o in self.offsets.items()}
            )
        except KafkaError as exc:
            self._failed(exc)
            return False
        if self.backoff.failures:
            log.info(
                "offsets committed again after %d failed attempts over %.0f s",
                self.backoff.failures,
                time.monotonic() - self.failing_since,
            )
        self.offsets.clear()
        self.backoff.succeeded()
        return True

    def _failed(self, exc: KafkaError) -> None:
        now = time.monotonic()
        if not self.backoff.failures:
            self.failing_since = now
        delay = self.backoff.failed()
        self.retry_at = now + delay
        # One warning when a streak starts, then one every 30 s while it lasts.
        if self.backoff.failures > 1 and now - self.warned < 30:
            return
        self.warned = now
        log.warning(
            "offset commit failed (%s): the rows of %d partitions are stored but not "
            "committed (failing for %.0f s, %d attempts); retrying in %.1f s. Nothing "
            "is lost (a restart re-reads them and drops them as replays), but the "
            "group's lag stays up until a commit succeeds; if this lasts, check that "
            "the broker and the coordinator of group %s are reachable.",
            exc,
            len(self.offsets),
            now - self.failing_since,
            self.backoff.failures,
            delay,
            self.group,
        )


class CheckpointLoop:
    """Reads the routes' topics with one consumer and stores them in checkpoint order.

    ``on_assigned`` runs when partitions are assigned (another store may have
    written them meanwhile: the writers reload their guards). ``announce`` gets
    each flush's messages (topic -> decoded) once they are stored, before the
    commit; it raises StoreError when it cannot, and the flush is read again.
    """

    def __init__(
        self,
        consumer: Consumer,
        routes: Mapping[str, Route[Any]],
        *,
        group: str,
        max_rows: int,
        max_wait_ms: int,
        on_assigned: Callable[[], None] = lambda: None,
        announce: Callable[[Mapping[str, list[Any]]], None] = lambda _: None,
        stop_event: threading.Event | None = None,
        stall_s: float = STALL_S,
        stall_check_s: float = CHECK_S,
    ) -> None:
        self.consumer = consumer
        self.routes = dict(routes)
        self.max_rows = max_rows
        self.max_wait_ms = max_wait_ms
        self.on_assigned = on_assigned
        self.announce = announce
        self.stop_event = stop_event or threading.Event()
        self.commits = Commits(consumer, group)
        self.backoff = Backoff(FLUSH_RETRY)  # counts consecutive failed flushes
        self.unreadable = 0
        self._pending = _Pending()
        self._rebalances = _Rebalances()
        self.stalls = StallWatch(stall_s, stall_check_s)
        self.resubscribed = 0
        self._subscribe()

    def _subscribe(self) -> None:
        self.consumer.subscribe(list(self.routes), listener=_Listener(self._rebalances))

    def run(self) -> None:
        """Poll, write, commit until the stop event is set; flushes before returning."""
        while not self.stop_event.is_set():
            faulthandler.dump_traceback_later(HUNG_S)  # re-armed each turn
            self.poll_once()
        faulthandler.cancel_dump_traceback_later()
        self.flush()

    def poll_once(self) -> None:
        started = time.monotonic()
        polled = self.consumer.poll(timeout_ms=100, max_records=500)
        self.stalls.polled(polled, time.monotonic() - started)
        reread = self._after_rebalance()
        for tp, records in polled.items():
            if tp in reread:  # fetched before the seek back: read again from there
                continue
            for record in records:
                self._add(tp, record.offset, record.value)
        pending = self._pending
        waited_ms = (time.monotonic() - pending.since) * 1000
        if pending.offsets and flush_due(
            pending.rows, waited_ms, behind(self.consumer, polled), self.max_rows, self.max_wait_ms
        ):
            self.flush()
        elif self.commits.due():  # a failed commit, retried even with no new input
            self.commits.commit()
        stuck = self.stalls.stuck(self.consumer)
        if stuck:
            self._subscribe_afresh(stuck)

    def _subscribe_afresh(self, stuck: list[Stuck]) -> None:
        """Leave and join the group again: the client rebuilds each partition's fetch
        state, and reads on from the last commit (what is pending is dropped)."""
        self.resubscribed += 1
        log.warning(
            "the Kafka consumer stopped fetching %s; subscribing again (reading on from "
            "the last commit, nothing is lost). If this repeats, report it with this log: "
            "it is a client library fault, not a broker one.",
            "; ".join(map(str, stuck)),
        )
        self._pending = _Pending()
        self.consumer.unsubscribe()
        self._subscribe()
        self.stalls.restart()  # the join that follows calls on_assigned, as any does

    def _after_rebalance(self) -> set[TopicPartition]:
        """Act on a rebalance the listener noted; returns the partitions sought back.

        After a revocation nothing pending is written: a partition that moved is
        re-read by its new owner from the last commit, and one assigned back to
        this store is sought back to its first pending offset and read again.
        """
        revoked, assigned = self._rebalances.take()
        reread: set[TopicPartition] = set()
        if revoked:
            dropped, self._pending = self._pending, _Pending()
            kept = self.consumer.assignment()
            for tp, first in dropped.first.items():
                if tp in kept:
                    self.consumer.seek(tp, first)
                    reread.add(tp)
        if assigned:
            self.on_assigned()  # another store may have written them meanwhile
        return reread

    def _add(self, tp: TopicPartition, offset: int, value: bytes | None) -> None:
        pending = self._pending
        route = self.routes[tp.topic]
        try:
            item = route.decode(value or b"")
        except (ValueError, KeyError, TypeError) as exc:
            # Written by our own workers: unreadable means a bug or a version skew.
            # Counted and logged, never blocking the partition.
            self.unreadable += 1
            log.error("unreadable message %s@%d: %s", tp, offset, exc)
        else:
            pending.items.setdefault(tp, []).append(item)
            pending.rows += route.size(item)
        pending.first.setdefault(tp, offset)
        pending.offsets[tp] = offset + 1

    def flush(self) -> None:
        """Write what is pending, route by route, announce it, then commit its offsets.

        When a write or the announcement fails, nothing is committed: the consumer is sent back
        to the first pending offsets and the same messages are read again
        after a pause (the writers' guards make the repeat harmless).
        """
        pending, self._pending = self._pending, _Pending()
        if not pending.offsets:
            return
        by_topic = pending.by_topic()
        try:
            crash_point("store.before_insert")
            for topic, route in self.routes.items():
                items = by_topic.get(topic)
                if items:
                    route.write(items)
                    crash_point("store.after_insert")
            self.announce(by_topic)
            crash_point("store.before_commit")
        except StoreError as exc:
            pause = self.backoff.failed()
            if disk_full(exc):  # nothing is committed: it resumes once space returns
                log.error(
                    "store write failed: disk full under the data path; nothing is committed "
                    "until space is freed (retrying in %.1f s): %s",
                    pause,
                    exc,
                )
            else:
                log.error(
                    "store write failed (%s); re-reading from the last commit in %.1f s",
                    exc,
                    pause,
                )
            assigned = self.consumer.assignment()
            for tp, first in pending.first.items():
                if tp in assigned:  # a partition moved away is re-read by its new owner
                    self.consumer.seek(tp, first)
            self.stop_event.wait(pause)
            return
        self.backoff.succeeded()
        self.commits.add(pending.offsets)
        self.commits.commit()


def behind(consumer: Consumer, polled: Mapping[TopicPartition, list[Any]]) -> bool:
    """Whether a partition just read from holds BEHIND_MESSAGES or more unread ones, by
    the high watermark of its last fetch (known locally: no request to the broker)."""
    for tp, records in polled.items():
        try:
            high = consumer.highwater(tp) if records else None
        except KafkaError:  # revoked in that poll: its reader is someone else now
            continue
        if high is not None and high - records[-1].offset - 1 >= BEHIND_MESSAGES:
            return True
    return False


def flush_due(rows: int, waited_ms: float, behind: bool, max_rows: int, max_wait_ms: int) -> bool:
    """Whether pending rows are written now: a full insert, or one that waited long
    enough (longer while the store is behind: BEHIND_WAIT_FACTOR)."""
    if rows >= max_rows:
        return True
    return waited_ms >= max_wait_ms * (BEHIND_WAIT_FACTOR if behind else 1)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Notes rebalances for the poll loop (see _Rebalances: nothing is done here)."""

    def __init__(self, seen: _Rebalances) -> None:
        self.seen = seen

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        with self.seen.lock:
            self.seen.revoked = True

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("store reads %s", sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))
        with self.seen.lock:
            self.seen.assigned = True
