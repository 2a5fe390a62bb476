"""Durable, validating kafka-python producer of token events.

Durability: acks=all and idempotence on, so a broker failover neither loses
nor duplicates an acknowledged send. Events are validated before they leave
the process; a bad one raises `InvalidEvent` naming the field, and is never
sent. Batched mode packs many events into one JSON-array message, which is
what makes kafka-python (pure Python) fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from tokenshare import kafka_clients
from tokenshare.schema.wire import Rejected, decode_message, rejections
from tokenshare.settings import Settings


class InvalidEvent(ValueError):
    """An event failed the contract; the message names the fields."""


@dataclass(slots=True)
class SendStats:
    sent: int = 0  # events handed to the client
    acked: int = 0  # events the broker acknowledged
    failed: int = 0
    messages: int = 0
    errors: list[str] = field(default_factory=list)


def validate(event: Mapping[str, Any] | bytes) -> bytes:
    """The event's wire bytes, or InvalidEvent with the reason."""
    raw = event if isinstance(event, bytes) else _dumps(event)
    if raw.lstrip(b" \t\r\n")[:1] != b"{":
        raise InvalidEvent("expected one JSON object (an event)")
    # One event: pydantic's one call is cheaper than the column checks' fixed cost.
    _raise_rejected(decode_message(raw, len(raw)).rejected, single=True)
    return raw


def validate_batch(events: list[Mapping[str, Any]]) -> bytes:
    """One JSON-array message of `events`, validated as the worker decodes it
    (the producer's own dicts checked by column, pydantic for any doubt), or
    InvalidEvent naming the first bad event."""
    raw = _dumps(events)
    _raise_rejected(rejections(raw, events if type(events) is list else None), single=False)
    return raw


def _dumps(value: object) -> bytes:
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError) as exc:
        raise InvalidEvent(f"not encodable as JSON: {exc}") from None


def _raise_rejected(rejected: list[Rejected], *, single: bool) -> None:
    if rejected:
        bad = rejected[0]
        where = "" if single or bad.index is None else f"event {bad.index} of the batch: "
        raise InvalidEvent(where + bad.reason)


class EventProducer:
    """Sends events to the events topic; use as a context manager (flushes on exit)."""

    def __init__(
        self,
        settings: Settings,
        *,
        on_ack: Callable[[list[str]], None] | None = None,
        **overrides: Any,
    ) -> None:
        self.topic = settings.events_topic
        self.stats = SendStats()
        self._on_ack = on_ack
        options: dict[str, Any] = {
            "client_id": f"{settings.worker_id}-producer",
            "linger_ms": 20,
            "batch_size": 1024 * 1024,
            "max_request_size": settings.max_message_bytes,
            "retries": 2**31 - 1,  # with idempotence, retries cannot duplicate
            "delivery_timeout_ms": 120_000,
            **overrides,
        }
        self._client = kafka_clients.producer(settings, **options)  # acks=all, idempotent

    def send(self, event: Mapping[str, Any] | bytes, *, validated: bool = False) -> None:
        """Send one event as one message, keyed by event id (its repeats share a partition)."""
        raw = event if validated and isinstance(event, bytes) else validate(event)
        event_id = _event_id(event, raw)
        self._send(raw, event_id.encode(), [event_id])

    def send_batch(self, events: Iterable[Mapping[str, Any]], *, validated: bool = False) -> None:
        """Send events as one JSON-array message. Raises InvalidEvent before sending any."""
        payloads = list(events)
        if not payloads:
            return
        value = orjson.dumps(payloads) if validated else validate_batch(payloads)
        ids = [str(e["event_id"]) for e in payloads]
        self._send(value, ids[0].encode(), ids)

    def send_raw(self, value: bytes, key: bytes | None = None) -> None:
        """Send bytes unvalidated: for tests and replays of already-checked data only."""
        self._send(value, key, [])

    def _send(self, value: bytes, key: bytes | None, ids: list[str]) -> None:
        future = self._client.send(self.topic, value=value, key=key)
        self.stats.sent += len(ids)
        self.stats.messages += 1
        future.add_callback(self._acked, ids)
        future.add_errback(self._failed, ids)

    def _acked(self, ids: list[str], _metadata: Any) -> None:
        self.stats.acked += len(ids)
        if self._on_ack is not None:
            self._on_ack(ids)

    def _failed(self, ids: list[str], exc: BaseException) -> None:
        self.stats.failed += len(ids)
        if len(self.stats.errors) < 20:
            self.stats.errors.append(str(exc))

    def flush(self, timeout: float | None = None) -> None:
        self._client.flush(timeout=timeout)

    def close(self) -> None:
        self._client.flush()
        self._client.close()

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _event_id(event: Mapping[str, Any] | bytes, raw: bytes) -> str:
    if isinstance(event, bytes):
        return str(orjson.loads(raw)["event_id"])
    return str(event["event_id"])
