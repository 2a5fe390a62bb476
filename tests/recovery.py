"""Recovery time after a fault, read from committed offsets (not by polling the store).

`Offsets` keeps one admin client and one consumer open, so a sample every 100 ms
costs two requests. `SteadyLoad` sends events at a fixed rate from a thread,
through the ledger, so every event it sends is checked afterwards.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaError

from tests.factories import event
from tests.ledger import Ledger
from tests.reliability_report import Recovery
from tokenshare import kafka_clients
from tokenshare.producers.kafka_producer import EventProducer
from tokenshare.settings import Settings


class Offsets:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._admin = kafka_clients.admin(settings)
        self._consumer = kafka_clients.consumer(settings)

    def _partitions(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for p in range(self.settings.partitions)]

    def end(self, topic: str) -> int:
        return sum(int(v) for v in self._consumer.end_offsets(self._partitions(topic)).values())

    def committed(self, group: str, topic: str) -> int | None:
        """Sum of the group's committed offsets on `topic`; None while unreadable."""
        try:
            offsets = self._admin.list_group_offsets({group: self._partitions(topic)})
        except KafkaError:
            return None  # the coordinator is moving (a rebalance, a broker restart)
        return sum(max(int(o.offset), 0) for o in offsets.get(group, {}).values())

    def lag(self, group: str, topic: str) -> int | None:
        done = self.committed(group, topic)
        return None if done is None else self.end(topic) - done

    def drained(self) -> bool:
        s = self.settings
        return (
            self.lag(s.ingest_group, s.events_topic) == 0
            and self.lag(s.store_group, s.rows_topic) == 0
        )

    def close(self) -> None:
        self._consumer.close()
        self._admin.close()

    def __enter__(self) -> Offsets:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class SteadyLoad:
    """`rate` events per second in messages of `batch` events, until stopped."""

    ledger: Ledger
    producer: EventProducer
    rate: float
    batch: int = 20
    seed: int = 500
    sent: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> SteadyLoad:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        interval = self.batch / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            chunk = [event(self.sent + i, seed=self.seed) for i in range(self.batch)]
            self.ledger.send(self.producer, chunk, batch=self.batch)
            self.sent += self.batch
            next_at += interval
            self._stop.wait(max(next_at - time.monotonic(), 0))

    def stop(self) -> None:
        """Stop sending and flush; idempotent (a failing test stops it on the way out)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.producer.flush()

    def __enter__(self) -> SteadyLoad:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stored_past(offsets: Offsets, mark: int, timeout: float) -> float:
    """Wait until the store has committed rows past `mark` (a sum of rows-topic
    offsets); the time it happened."""
    s = offsets.settings
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = offsets.committed(s.store_group, s.rows_topic)
        if done is not None and done > mark:
            return time.monotonic()
        time.sleep(0.1)
    raise TimeoutError(f"no row stored past offset {mark} within {timeout:.0f}s")


def drained_at(offsets: Offsets, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if offsets.drained():
            return time.monotonic()
        time.sleep(0.1)
    raise TimeoutError(f"lag not zero within {timeout:.0f}s")


def measure(
    offsets: Offsets, fault_at: float, mark: int, load: SteadyLoad, load_after_s: float = 5.0
) -> Recovery:
    """After a fault at `fault_at` (monotonic): the load goes on for `load_after_s`,
    then stops; first row past `mark`, then lag zero."""
    first = stored_past(offsets, mark, timeout=180)
    time.sleep(max(fault_at + load_after_s - time.monotonic(), 0))
    load.stop()
    zero = drained_at(offsets, timeout=180)
    return Recovery(first_row_s=first - fault_at, lag_zero_s=zero - fault_at)


def events_of(n: int, seed: int) -> list[dict[str, Any]]:
    return [event(i, seed=seed) for i in range(n)]
