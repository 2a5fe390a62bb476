"""An alert destination over HTTP: a queue, a poster with retries, and counters.

Never in the way of ingestion or evaluation: `submit` only queues (and counts a
drop when the queue is full); a background task posts with retries and
jittered exponential backoff (tokenshare.retry), and counts what it could not
deliver. `Webhook` itself POSTs each alert as its JSON message (which has a
human-readable `text`); `SlackWebhook` and `Alertmanager` change only the URL
and the body (`tokenshare.streams.shares.slack`, `.alertmanager`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import aiohttp
import orjson
from mode import Service

from tokenshare.retry import RetryCallState, RetryPolicy, async_retrying
from tokenshare.schema.outputs import AlertMessage

log = logging.getLogger("tokenshare.webhook")

#: An alert as the share stage hands it over: the message, or its JSON form.
Alert = AlertMessage | dict[str, Any]


@dataclass(slots=True)
class WebhookStats:
    delivered: int = 0
    failed: int = 0  # gave up after every retry, or refused as not an alert
    dropped: int = 0  # queue full
    retries: int = 0

    def add(self, other: WebhookStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def as_message(alert: Alert) -> AlertMessage:
    """The alert as a validated message (a ValueError when a dict is not one)."""
    return alert if isinstance(alert, AlertMessage) else AlertMessage.model_validate(alert)


def alert_id(alert: Alert) -> object:
    return alert.alert_id if isinstance(alert, AlertMessage) else alert.get("alert_id")


class Webhook(Service):
    #: The destination's name in logs and in the worker's /stats.
    destination: ClassVar[str] = "webhook"
    #: How many queued alerts one POST may carry.
    batch_max: ClassVar[int] = 1

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
        self.queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=queue_size)
        super().__init__(**kwargs)

    # --- what a destination changes ---------------------------------------------------
    @property
    def endpoint(self) -> str:
        """Where the POST goes."""
        assert self.url is not None
        return self.url

    def body(self, alerts: list[Alert]) -> bytes:
        """The JSON body of one POST carrying ``alerts`` (at most ``batch_max``)."""
        (alert,) = alerts
        return orjson.dumps(
            alert.model_dump(mode="json") if isinstance(alert, AlertMessage) else alert
        )

    # --- queue and delivery --------------------------------------------------------------
    def submit(self, alert: Alert) -> None:
        if self.url is None:
            return
        try:
            self.queue.put_nowait(alert)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            log.error("alert %s queue full: alert %s not posted", self.destination, alert_id(alert))

    @Service.task
    async def _deliver(self) -> None:
        if self.url is None:
            return
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not self.should_stop:
                batch = [await self.queue.get()]
                while len(batch) < self.batch_max and not self.queue.empty():
                    batch.append(self.queue.get_nowait())
                await self._post(session, batch)

    async def _post(self, session: aiohttp.ClientSession, alerts: list[Alert]) -> None:
        ids = ", ".join(str(alert_id(a)) for a in alerts)
        try:
            body = self.body(alerts)
        except ValueError as exc:  # a dict that is no alert message
            self.stats.failed += len(alerts)
            log.error("alert %s not sent to the %s: not an alert: %s", ids, self.destination, exc)
            return
        try:
            async for attempt in async_retrying(
                self.policy,
                on=(aiohttp.ClientError, TimeoutError, _Refused),
                attempts=self.attempts,
                on_retry=self._count_retry,
            ):
                with attempt:
                    async with session.post(
                        self.endpoint, data=body, headers={"Content-Type": "application/json"}
                    ) as reply:
                        if reply.status >= 300:
                            raise _Refused(f"HTTP {reply.status}: {(await reply.text())[:200]}")
        except (aiohttp.ClientError, TimeoutError, _Refused) as exc:
            self.stats.failed += len(alerts)
            problem = str(exc) or type(exc).__name__
            log.error("alert %s not delivered to the %s: %s", ids, self.destination, problem)
            return
        self.stats.delivered += len(alerts)

    def _count_retry(self, _state: RetryCallState) -> None:
        self.stats.retries += 1


class _Refused(Exception):
    """The destination answered, but not with success."""
