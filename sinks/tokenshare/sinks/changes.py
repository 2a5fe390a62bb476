"""Tell the share stage that rows were stored: one notice per partition of the changes topic.

The checkpoint loop calls :class:`ChangeNotices` after a flush's inserts and
before its commit, and waits for the broker's acks: a notice is never read
before the rows it announces are in ClickHouse, and a crash before the commit
replays the flush and repeats the notice (harmless: the share stage reads the
store, not the notice) instead of losing it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from tokenshare.schema.changes import RollupChange
from tokenshare.schema.rows import RowBatch
from tokenshare.sinks.clickhouse import StoreError


class ChangeNotices:
    """Announces the rows of a flush on `topic`; raises StoreError when it cannot."""

    def __init__(
        self, producer: KafkaProducer, topic: str, rows_topic: str, timeout_s: float = 30.0
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.rows_topic = rows_topic
        self.timeout_s = timeout_s
        self.sent = 0
        self.flushes = 0
        self._instance = uuid.uuid4().hex[:12]  # flush ids unique across stores and restarts
        self._partitions: int | None = None

    def __call__(self, flushed: Mapping[str, list[Any]]) -> None:
        batches: list[RowBatch] = [b for b in flushed.get(self.rows_topic, []) if len(b)]
        if not batches:
            return  # alerts and snapshots change no sums
        first, last = _days(batches)
        self.flushes += 1
        flush = f"{self._instance}-{self.flushes}"
        try:
            partitions = self._partition_count()
            sends = []
            notice = RollupChange(reason="rows", first_day=first, last_day=last, flush=flush)
            for partition in range(partitions):
                sends.append(
                    self.producer.send(
                        self.topic,
                        value=notice.encode(),
                        key=RollupChange.key_of(partition, partitions),
                        partition=partition,
                    )
                )
            self.producer.flush(timeout=self.timeout_s)
            for send in sends:
                send.get(timeout=self.timeout_s)  # raises what the broker answered
        except KafkaError as exc:
            raise StoreError(f"change notices to {self.topic} not acknowledged: {exc}") from exc
        self.sent += len(sends)

    def _partition_count(self) -> int:
        if self._partitions is None:
            known = self.producer.partitions_for(self.topic)  # waits for metadata
            if not known:
                raise StoreError(f"topic {self.topic} has no partitions; run `tokenshare topics`")
            self._partitions = len(known)
        return self._partitions

    def close(self) -> None:
        self.producer.close(timeout=self.timeout_s)


def _days(batches: list[RowBatch]) -> tuple[date, date]:
    ranges = [b.ts_range() for b in batches if len(b)]
    lo = min(first for first, _ in ranges)
    hi = max(last for _, last in ranges)
    return _day(lo), _day(hi)


def _day(ts_ms: int) -> date:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).date()
