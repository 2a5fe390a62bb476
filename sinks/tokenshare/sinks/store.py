"""The store: reads the rows, alerts and shares topics, writes ClickHouse, then commits.

Checkpoint order, the one rule everything else relies on:

    poll  ->  insert into ClickHouse (idempotent)  ->  commit offsets

A crash anywhere replays from the last commit and the writer's guards drop
what was already stored. In embedded mode exactly one store runs per data
path (``sinks.owner``); with a ClickHouse server, run as many as there are
rows partitions to share.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from tokenshare.faults import crash_point
from tokenshare.schema.rows import RowBatch
from tokenshare.settings import Settings
from tokenshare.sinks.clickhouse import StoreError, connect, migrate
from tokenshare.sinks.cluster import Cluster
from tokenshare.sinks.owner import OwnerLock, data_path_of
from tokenshare.sinks.query import ReadOnlySession, serve
from tokenshare.sinks.raw_events import RawEventWriter
from tokenshare.sinks.share_tables import write_alerts, write_snapshots
from tokenshare.streams.shares.config import load_rules

log = logging.getLogger("tokenshare.store")


@dataclass(slots=True)
class _Pending:
    batches: list[RowBatch] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)  # next to commit
    first: dict[TopicPartition, int] = field(default_factory=dict)  # where to re-read from
    rows: int = 0
    since: float = field(default_factory=time.monotonic)


class _Commits:
    """Offsets whose rows are stored, kept until a commit of them succeeds.

    A failed commit loses nothing (the rows are stored; a re-read is dropped by the
    writer's guards), but dropping its offsets would leave the group's lag up
    until more rows happen to arrive on those partitions, and for a partition's
    last rows that is never. So they are kept and the commit retried, with backoff.
    """

    def __init__(self, consumer: KafkaConsumer, group: str) -> None:
        self.consumer = consumer
        self.group = group
        self.offsets: dict[TopicPartition, int] = {}  # next offset to commit
        self.failures = 0  # consecutive failed commits
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
        if self.failures:
            log.info(
                "offsets committed again after %d failed attempts over %.0f s",
                self.failures,
                time.monotonic() - self.failing_since,
            )
        self.offsets.clear()
        self.failures = 0
        return True

    def _failed(self, exc: KafkaError) -> None:
        now = time.monotonic()
        if not self.failures:
            self.failing_since = now
        self.failures += 1
        delay = min(0.5 * 2 ** min(self.failures, 5), 10.0)
        self.retry_at = now + delay
        # One warning when a streak starts, then one every 30 s while it lasts.
        if self.failures > 1 and now - self.warned < 30:
            return
        self.warned = now
        log.warning(
            "offset commit failed (%s): the rows of %d partitions are stored but not "
            "committed (failing for %.0f s, %d attempts); retrying in %.0f s. Nothing "
            "is lost (a restart re-reads them and drops them as replays), but the "
            "group's lag stays up until a commit succeeds; if this lasts, check that "
            "the broker and the coordinator of group %s are reachable.",
            exc,
            len(self.offsets),
            now - self.failing_since,
            self.failures,
            delay,
            self.group,
        )


class Store:
    """Owns the ClickHouse writer and the rows consumer. Run with `run()`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop_event = threading.Event()
        self.lock: OwnerLock | None = None
        self.query_url: str | None = None
        self._pending = _Pending()
        self.unreadable = 0
        self.failures = 0  # consecutive failed flushes
        if settings.embedded:
            self.lock = OwnerLock(data_path_of(settings.dsn))
            self.lock.acquire()
        cluster = Cluster.of(settings)
        client = connect(settings.dsn, cluster=cluster)
        migrate(client, settings.clickhouse_database, cluster)
        lateness = load_rules(settings.rules_file).lateness
        self.dead_letters = KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            acks="all",
            enable_idempotence=True,
            client_id=f"{settings.worker_id}-store-dlq",
            **settings.kafka_client_options(),
        )
        self.writer = RawEventWriter(
            client,
            settings.clickhouse_database,
            lateness_ms=int(lateness.total_seconds() * 1000),
            on_conflicts=self._dead_letter_conflicts,
        )
        self.writer.load_marks()
        reader = connect(settings.dsn, readonly=True)
        self._server = serve(
            ReadOnlySession(reader, settings.clickhouse_database), settings.store_query_port
        )
        self.query_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        if self.lock is not None:
            self.lock.publish(self.query_url)
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=settings.store_group,
            client_id=f"{settings.worker_id}-store",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=16 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
            max_poll_records=500,
            **settings.kafka_client_options(),
        )
        self.commits = _Commits(self.consumer, settings.store_group)
        self.consumer.subscribe(
            [settings.rows_topic, settings.alerts_topic, settings.shares_topic],
            listener=_Flusher(self),
        )

    def run(self) -> None:
        """Poll, write, commit until stop() or SIGTERM; flushes before returning."""
        try:
            while not self.stop_event.is_set():
                self.poll_once()
            self.flush()
        finally:
            self.close()

    def poll_once(self) -> None:
        polled = self.consumer.poll(timeout_ms=100, max_records=500)
        for tp, records in polled.items():
            for record in records:
                self._add(tp, record.offset, record.value)
        pending = self._pending
        waited_ms = (time.monotonic() - pending.since) * 1000
        if pending.rows >= self.settings.store_max_rows or (
            pending.offsets and waited_ms >= self.settings.store_max_wait_ms
        ):
            self.flush()
        elif self.commits.due():  # a failed commit, retried even with no new input
            self.commits.commit()

    def _add(self, tp: TopicPartition, offset: int, value: bytes | None) -> None:
        pending = self._pending
        try:
            if tp.topic == self.settings.rows_topic:
                batch = RowBatch.decode(value or b"")
                pending.batches.append(batch)
                pending.rows += len(batch)
            elif tp.topic == self.settings.alerts_topic:
                pending.alerts.append(orjson.loads(value or b""))
            else:
                pending.snapshots.append(orjson.loads(value or b""))
        except (ValueError, KeyError, TypeError) as exc:
            # Written by our own workers: unreadable means a bug or a version skew.
            # Counted and logged, never blocking the partition.
            self.unreadable += 1
            log.error("unreadable message %s@%d: %s", tp, offset, exc)
        pending.first.setdefault(tp, offset)
        pending.offsets[tp] = offset + 1

    def flush(self, commit: bool = True) -> None:
        """Insert pending rows, then commit their offsets (the checkpoint order).

        When ClickHouse fails, nothing is committed: the consumer is sent back
        to the first pending offsets and the same messages are read again
        after a pause (the writer's guards make the repeat harmless). With
        `commit=False` the offsets wait for the next commit (see _Flusher).
        """
        pending, self._pending = self._pending, _Pending()
        if not pending.offsets:
            return
        try:
            crash_point("store.before_insert")
            self.writer.write(pending.batches)
            crash_point("store.after_insert")
            db = self.settings.clickhouse_database
            write_alerts(self.writer.client, db, pending.alerts)
            write_snapshots(self.writer.client, db, pending.snapshots)
            crash_point("store.before_commit")
        except StoreError as exc:
            self.failures += 1
            log.error("store write failed (%s); re-reading from the last commit", exc)
            assigned = self.consumer.assignment()
            for tp, first in pending.first.items():
                if tp in assigned:  # a partition moved away is re-read by its new owner
                    self.consumer.seek(tp, first)
            self.stop_event.wait(min(0.5 * 2 ** min(self.failures, 5), 10.0))
            return
        self.failures = 0
        self.commits.add(pending.offsets)
        if commit:
            self.commits.commit()

    def _dead_letter_conflicts(self, rows: list[dict[str, Any]]) -> None:
        """Same event id, same day, other figures: not the same event. Refused, with both."""
        for row in rows:
            headers = [
                (
                    "error",
                    b"duplicate event_id with a different payload (an event with this id "
                    b"and day is already stored with other figures)",
                ),
                ("source.topic", str(row["src_topic"]).encode()),
                ("source.partition", str(row["src_partition"]).encode()),
                ("source.offset", str(row["src_offset"]).encode()),
                ("source.index", str(row["src_index"]).encode()),
            ]
            value = orjson.dumps({k: v for k, v in row.items() if not k.startswith("src_")})
            self.dead_letters.send(
                self.settings.dlq_topic,
                value=value,
                key=str(row["event_id"]).encode(),
                headers=headers,
            )
        self.dead_letters.flush()

    def stop(self, *_: Any) -> None:
        self.stop_event.set()

    def install_signal_handlers(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def close(self) -> None:
        self._server.shutdown()
        self.dead_letters.close()
        self.consumer.close(autocommit=False)
        if self.lock is not None:
            self.lock.release()


class _Flusher(ConsumerRebalanceListener):  # type: ignore[misc]
    """Write what was read before partitions move to another store.

    kafka-python 3 calls this listener on its IO thread, where a blocking
    consumer call (commit) raises RuntimeError; so the offsets are only kept
    here and committed by the poll loop, for the partitions still assigned. A
    partition that moved is re-read by its new owner from its last commit, and
    the writer's guards (reloaded on assignment) drop what was already stored.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.store.flush(commit=False)

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # Another store may have written these partitions' rows meanwhile.
        self.store.writer.load_marks()
