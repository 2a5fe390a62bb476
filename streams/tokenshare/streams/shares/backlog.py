"""Which source partitions still have events on their way to the store.

The watermark leaves out a partition whose rows stopped coming a while ago
(``tokenshare.watermark``): a quiet source must not hold every window open. But
a partition is just as quiet while the worker that read it was killed and its
partitions have not moved yet, or while a restarted store catches up; leaving
it out then would make windows final on part of their data. The consumer groups'
lag tells the two apart: a partition with events the ingest group has not
consumed, or rows the store group has not stored, has a backlog, and counts as
active however old its last rows are.

The worker writes the rows of source partition p to rows partition
``rows_partition(p, n)`` (``streams.topics``), so one rows partition's lag
answers for one source.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from tokenshare import kafka_clients
from tokenshare.settings import Settings
from tokenshare.streams.topics import rows_partition

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient

log = logging.getLogger("tokenshare.shares")

#: Longer than this, and the lag counts as unreadable for this evaluation.
LAG_TIMEOUT_S = 10.0


class Backlog:
    """Reads both groups' lag with the share stage's own clients (and an admin client)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._admin: AIOKafkaAdminClient | None = None

    async def behind(
        self, producer: AIOKafkaProducer, consumer: AIOKafkaConsumer
    ) -> set[int] | None:
        """The events partitions with a backlog; None when the lag cannot be read."""
        s = self.settings
        try:
            async with asyncio.timeout(LAG_TIMEOUT_S):
                events = await self._lag(producer, consumer, s.ingest_group, s.events_topic)
                rows = await self._lag(producer, consumer, s.store_group, s.rows_topic)
        except (KafkaError, TimeoutError) as exc:  # the caller judges idleness by age alone
            log.warning("consumer lag not readable (%r): idle partitions judged by age", exc)
            await self.close()
            return None
        return {
            p
            for p, lag in events.items()
            if lag > 0 or rows.get(rows_partition(p, len(rows) or 1), 0) > 0
        }

    async def _lag(
        self, producer: AIOKafkaProducer, consumer: AIOKafkaConsumer, group: str, topic: str
    ) -> dict[int, int]:
        """Partition -> messages of `topic` not yet committed by `group`."""
        if self._admin is None:
            self._admin = kafka_clients.aio_admin(self.settings, client_id="tokenshare-backlog")
            await self._admin.start()
        tps = [TopicPartition(topic, p) for p in sorted(await producer.partitions_for(topic))]
        ends = await consumer.end_offsets(tps)
        committed = await self._admin.list_consumer_group_offsets(group, partitions=tps)
        done = {tp: max(int(c.offset), 0) for tp, c in committed.items() if c is not None}
        return {tp.partition: int(end) - done.get(tp, 0) for tp, end in ends.items()}

    async def close(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(Exception):  # a dead broker's client: nothing kept
                await self._admin.close()
        self._admin = None
