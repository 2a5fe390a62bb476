"""The worker's hot path: events topic in, rows and dead letters out.

Faust runs the worker (lifecycle, signals, web views, agents for small
state), but its per-message stream machinery costs far more than decoding an
event, so the events topic is read here in batches with aiokafka, the client
Faust itself is built on, in a consumer group of its own.

Checkpoint order, per batch:

    getmany  ->  decode, validate, enrich  ->  produce rows + dead letters
             ->  wait for every ack (acks=all)  ->  commit source offsets

Nothing is committed before the store's input holds it durably, so a crash
only replays, and the store's guards drop replays.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from tokenshare import kafka_clients
from tokenshare.faults import crash_point
from tokenshare.retry import Backoff, RetryPolicy
from tokenshare.schema.catalog import Catalog
from tokenshare.schema.outputs import AlertMessage, Window
from tokenshare.schema.vocabulary import DEAD_LETTER_BREAKER, INPUT_DIMENSION
from tokenshare.settings import Settings
from tokenshare.streams.batch import BatchResult, Enricher, SourceMessage
from tokenshare.streams.breaker import DeadLetterBreaker
from tokenshare.streams.metrics import IngestMetrics
from tokenshare.streams.topics import rows_partition

log = logging.getLogger("tokenshare.ingest")

#: Rows per rows-topic message: keeps messages well under the broker's size limit.
ROWS_PER_MESSAGE = 5_000

#: Pauses before re-reading a batch that could not be forwarded or committed.
REREAD_BACKOFF = RetryPolicy(first_s=1.0, max_s=10.0)


@dataclass(slots=True)
class IngestStats:
    messages: int = 0
    events: int = 0
    dead_letters: int = 0
    batches: int = 0
    started: float = 0.0

    def as_dict(self) -> dict[str, float]:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return {
            "messages": self.messages,
            "events": self.events,
            "dead_letters": self.dead_letters,
            "batches": self.batches,
            "events_per_s": round(self.events / elapsed, 1),
        }


class IngestService(Service):
    """Consumes the events topic in batches and forwards rows to the store."""

    def __init__(self, settings: Settings, catalog: Catalog, **kwargs: Any) -> None:
        self.settings = settings
        self.enricher = Enricher(catalog, settings.max_message_bytes)
        self.stats = IngestStats()
        self.metrics = IngestMetrics()
        self.breaker = DeadLetterBreaker()
        self._batch_lock = asyncio.Lock()
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        s = self.settings
        self.producer = kafka_clients.aio_producer(
            s,
            client_id=f"{s.worker_id}-ingest",
            linger_ms=5,
            max_batch_size=1024 * 1024,
            max_request_size=16 * 1024 * 1024,
        )
        self.consumer = kafka_clients.aio_consumer(
            s,
            client_id=f"{s.worker_id}-ingest",
            group_id=s.ingest_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
            **kafka_clients.membership(s, "ingest"),  # back in seconds after a restart
        )
        await self.producer.start()
        self.consumer.subscribe([s.events_topic], listener=_FinishBatch(self._batch_lock))
        await self.consumer.start()
        self.stats.started = time.monotonic()

    async def on_stop(self) -> None:
        # The running batch finishes and commits before the clients close.
        async with self._batch_lock:
            if self.consumer is not None:
                await self.consumer.stop()
            if self.producer is not None:
                await self.producer.stop()

    async def lag(self) -> int:
        """Events-topic messages this worker's partitions have not yet consumed."""
        if self.consumer is None:
            return 0
        total = 0
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                total += max(highwater - await self.consumer.position(tp), 0)
        return total

    @Service.task
    async def _consume(self) -> None:
        assert self.consumer is not None
        s = self.settings
        backoff = Backoff(REREAD_BACKOFF)
        while not self.should_stop:
            records = await self.consumer.getmany(
                timeout_ms=s.ingest_max_wait_ms, max_records=s.ingest_max_records
            )
            if not records:
                continue
            async with self._batch_lock:
                try:
                    await self.handle(records)
                    backoff.succeeded()
                except KafkaError as exc:
                    # Broker away, a send timed out, or the commit failed after the
                    # rows went out: nothing of this batch is committed, so read it
                    # again from its first offsets (the store drops rows it has).
                    log.error(
                        "batch not forwarded or not committed (%s); re-reading it from its "
                        "first offsets",
                        exc,
                    )
                    assigned = self.consumer.assignment()
                    for tp, batch in records.items():
                        if tp in assigned:  # a moved partition is re-read by its new owner
                            self.consumer.seek(tp, batch[0].offset)
                    await self.sleep(backoff.failed())  # Service.sleep: ends on stop

    async def handle(self, records: dict[TopicPartition, list[Any]]) -> None:
        """One batch through the checkpoint order in the module docstring."""
        assert self.consumer is not None
        started = time.perf_counter()
        messages = [
            SourceMessage(r.topic, r.partition, r.offset, r.value, r.key)
            for batch in records.values()
            for r in batch
        ]
        result = self.enricher.process(messages)
        change = self.breaker.record(result.valid, len(result.dead_letters))
        result.dead_letters = [d for d in result.dead_letters if self.breaker.keep()]
        crash_point("worker.before_publish")
        await self._publish(result)
        if change is not None:
            await self._breaker_alert(change)
        crash_point("worker.after_publish")
        await self.consumer.commit({tp: batch[-1].offset + 1 for tp, batch in records.items()})
        self.stats.messages += len(messages)
        self.stats.events += result.valid
        self.stats.dead_letters += len(result.dead_letters)
        self.stats.batches += 1
        self.metrics.record(
            len(messages),
            result.valid,
            len(result.dead_letters),
            result.rows,
            seconds=time.perf_counter() - started,
        )

    async def _breaker_alert(self, change: str) -> None:
        """One alert when the dead-letter breaker opens or closes (see streams.breaker)."""
        assert self.producer is not None
        now = datetime.now(UTC)
        ratio = self.breaker.invalid_ratio
        text = f"dead-letter breaker {change}: {ratio:.0%} of recent inputs invalid; " + (
            "sampling 1 in 100 dead letters"
            if change == "opened"
            else f"{self.breaker.shed} invalid inputs were counted, not copied"
        )
        alert = AlertMessage.about(
            Window.iso_week(now.date()),
            alert_id=f"breaker-{self.settings.worker_id}-{change}-{now.timestamp():.0f}",
            rule=DEAD_LETTER_BREAKER,
            status="final",
            dimension=INPUT_DIMENSION,
            measure="requests",
            subject=change,
            text=text,
            details={"invalid_ratio": ratio, "shed": self.breaker.shed},
        )
        log.error(text)
        await (
            await self.producer.send(
                self.settings.alerts_topic, alert.encode(), key=alert.alert_id.encode()
            )
        )

    async def _publish(self, result: BatchResult) -> None:
        assert self.producer is not None
        s = self.settings
        sends = []
        rows_partitions = len(await self.producer.partitions_for(s.rows_topic))
        for rows in result.rows:
            key = f"{rows.src_topic}:{rows.src_partition}".encode()
            partition = rows_partition(rows.src_partition, rows_partitions)
            for chunk in rows.chunks(ROWS_PER_MESSAGE):
                sends.append(
                    await self.producer.send(
                        s.rows_topic, chunk.encode(), key=key, partition=partition
                    )
                )
        for dead in result.dead_letters:
            sends.append(
                await self.producer.send(
                    s.dlq_topic, dead.original, key=dead.key, headers=dead.headers()
                )
            )
        if sends:
            await asyncio.gather(*sends)  # raises if any send failed: nothing gets committed


class _FinishBatch(ConsumerRebalanceListener):  # type: ignore[misc]
    """Let the batch in flight produce and commit before partitions move."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self.lock = lock

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self.lock:
            pass

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("ingest reads partitions %s", sorted(tp.partition for tp in assigned))
