"""Optional alert webhook: JSON POST with a human-readable `text` line.

Never in the way of ingestion or evaluation: `submit` only queues (and
counts a drop when the queue is full); a background task posts with retries
and jittered exponential backoff (tokenshare.retry), and counts what it could not deliver.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from mode import Service

from tokenshare.retry import RetryCallState, RetryPolicy, async_retrying

log = logging.getLogger("tokenshare.webhook")


@dataclass(slots=True)
class WebhookStats:
    delivered: int = 0
    failed: int = 0  # gave up after every retry
    dropped: int = 0  # queue full
    retries: int = 0


class Webhook(Service):
    def __init__(
        self,
        url: str | None,
        *,
        attempts: int = 5,
        first_delay: float = 0.5,
        max_delay: float = 30.0,
        queue_size: int = 1000,
        timeout: float = 5.0,
        **kwargs: Any,
    ) -> None:
        self.url = url
        self.attempts = attempts
        self.policy = RetryPolicy(first_s=first_delay, max_s=max(max_delay, first_delay))
        self.timeout = timeout
        self.stats = WebhookStats()
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=queue_size)
        super().__init__(**kwargs)

    def submit(self, alert: dict[str, Any]) -> None:
        if self.url is None:
            return
        try:
            self.queue.put_nowait(alert)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            log.error("alert webhook queue full: alert %s not posted", alert.get("alert_id"))

    @Service.task
    async def _deliver(self) -> None:
        if self.url is None:
            return
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not self.should_stop:
                alert = await self.queue.get()
                await self._post(session, alert)

    async def _post(self, session: aiohttp.ClientSession, alert: dict[str, Any]) -> None:
        assert self.url is not None
        body = orjson.dumps(alert)
        try:
            async for attempt in async_retrying(
                self.policy,
                on=(aiohttp.ClientError, TimeoutError, _Refused),
                attempts=self.attempts,
                on_retry=self._count_retry,
            ):
                with attempt:
                    async with session.post(
                        self.url, data=body, headers={"Content-Type": "application/json"}
                    ) as reply:
                        if reply.status >= 300:
                            raise _Refused(f"HTTP {reply.status}")
        except (aiohttp.ClientError, TimeoutError, _Refused) as exc:
            self.stats.failed += 1
            problem = str(exc) or type(exc).__name__
            log.error("alert %s not delivered to the webhook: %s", alert.get("alert_id"), problem)
            return
        self.stats.delivered += 1

    def _count_retry(self, _state: RetryCallState) -> None:
        self.stats.retries += 1


class _Refused(Exception):
    """The webhook answered, but not with success."""
