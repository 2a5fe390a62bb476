"""The share stage inside a worker: ticks on the Faust leader only.

Every worker runs this service, but only the worker Faust elects leader
evaluates (a leader timer), so the deployment has one evaluator whatever the
number of workers. Each tick:

    catch up the ledger (alerts topic)  ->  read day sums  ->  evaluate
    ->  publish new alerts, wait for acks  ->  remember them  ->  snapshots

A new leader or a restarted worker reads the ledger first, so it fires
nothing the previous one fired.

The day sums come from the store through `query` (read-only SQL -> rows): the
worker's composition root passes the store's reader in, so the share stage
knows no sink.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from mode import Service

from tokenshare import kafka_clients
from tokenshare.settings import Settings
from tokenshare.streams.shares.config import load_rules
from tokenshare.streams.shares.engine import Query, ShareEngine, TickResult, load_day_sums
from tokenshare.streams.shares.webhook import Webhook

log = logging.getLogger("tokenshare.shares")


@dataclass(slots=True)
class ShareStats:
    ticks: int = 0
    alerts: int = 0
    snapshots: int = 0
    failed_ticks: int = 0
    last_tick_s: float = 0.0
    watermark: str | None = None
    recent_alerts: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=100))
    current: dict[str, dict[str, Any]] = field(default_factory=dict)  # latest snapshot per key


class ShareService(Service):
    def __init__(self, settings: Settings, query: Query, **kwargs: Any) -> None:
        self.settings = settings
        self.query = query
        self.engine = ShareEngine(load_rules(settings.rules_file))
        self.stats = ShareStats()
        self.webhook = Webhook(settings.alert_webhook_url)
        self.producer: AIOKafkaProducer | None = None
        self.ledger: AIOKafkaConsumer | None = None
        self._tick_lock = asyncio.Lock()
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        s = self.settings
        self.producer = kafka_clients.aio_producer(
            s, client_id=f"{s.worker_id}-shares", max_request_size=16 * 1024 * 1024
        )
        self.ledger = kafka_clients.aio_consumer(
            s,
            client_id=f"{s.worker_id}-ledger",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await self.producer.start()
        await self.ledger.start()
        self.ledger.assign([TopicPartition(s.alerts_topic, 0)])
        await self.ledger.seek_to_beginning()
        await self.add_runtime_dependency(self.webhook)

    async def on_stop(self) -> None:
        async with self._tick_lock:
            if self.ledger is not None:
                await self.ledger.stop()
            if self.producer is not None:
                await self.producer.stop()

    async def catch_up(self) -> None:
        """Read the alerts topic to its end: every alert there has fired."""
        assert self.ledger is not None
        tp = TopicPartition(self.settings.alerts_topic, 0)
        end = (await self.ledger.end_offsets([tp]))[tp]
        while await self.ledger.position(tp) < end:
            batch = await self.ledger.getmany(tp, timeout_ms=500)
            for record in batch.get(tp, []):
                self.engine.remember([record.key.decode()] if record.key else [])

    async def tick(self) -> TickResult | None:
        """One evaluation; None when the store cannot be read yet."""
        if self.ledger is None or self.producer is None:
            return None  # the leader timer can fire before this service has started
        async with self._tick_lock:
            started = time.monotonic()
            await self.catch_up()
            try:
                sums = await asyncio.get_running_loop().run_in_executor(None, self._read_sums)
            except Exception as exc:  # store not up yet, or restarting: try next tick
                self.stats.failed_ticks += 1
                log.warning("share tick skipped: cannot read day sums: %s", exc)
                return None
            result = self.engine.tick(sums)
            await self._publish(result)
            self.stats.ticks += 1
            self.stats.last_tick_s = time.monotonic() - started
            self.stats.watermark = result.watermark.isoformat() if result.watermark else None
            return result

    def _read_sums(self) -> Any:
        return load_day_sums(
            self.query,
            self.settings.clickhouse_database,
            self.engine.rules.idle_partition_seconds,
        )

    async def _publish(self, result: TickResult) -> None:
        assert self.producer is not None
        s = self.settings
        sends = []
        messages = [alert.message() for alert in result.alerts]
        for message in messages:
            sends.append(
                await self.producer.send(
                    s.alerts_topic, message.encode(), key=message.alert_id.encode()
                )
            )
        await asyncio.gather(*sends)  # acked: now they are in the ledger
        for message in messages:
            self.engine.remember([message.alert_id])
            self.stats.recent_alerts.append(message.model_dump(mode="json"))
            self.webhook.submit(message.model_dump(mode="json"))
            log.warning("ALERT %s", message.text)
        self.stats.alerts += len(result.alerts)
        sends = []
        for snap in result.snapshots:
            self.stats.current[snap.key] = snap.model_dump(mode="json")
            sends.append(
                await self.producer.send(s.shares_topic, snap.encode(), key=snap.key.encode())
            )
        await asyncio.gather(*sends)
        self.stats.snapshots += len(result.snapshots)
