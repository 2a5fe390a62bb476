"""Request bodies -> valid events and per-index rejections; events -> Kafka messages.

The ingest endpoint accepts the valid events of a request even when some are
not (each rejection names its index and reason), so one malformed event never
costs a gateway the rest of its batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from tokenshare.schema.event import EventFields, TokenEvent
from tokenshare.schema.wire import decode_message


class BadBody(ValueError):
    """The body as a whole is not events (not JSON, not an object or array, empty)."""


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int  # position in the request's array (0 for a single object)
    error: str


@dataclass(slots=True)
class Intake:
    events: list[EventFields] = field(default_factory=list)  # TokenEvent instances
    rejected: list[Rejection] = field(default_factory=list)


def parse_events(body: bytes) -> Intake:
    """Validate one event object or an array of them, as the worker does.

    ``wire.decode_message`` validates the whole array in one call (pydantic-core) and
    only when that fails each element, to find which ones; the events are TokenEvents
    (times in UTC). BadBody when the body as a whole is no events."""
    decoded = decode_message(body, len(body), TokenEvent)
    if not decoded.events and all(r.index is None for r in decoded.rejected):
        _require_event_shape(body)  # an empty array, or no JSON object or array at all?
    return Intake(decoded.events, [Rejection(r.index or 0, r.reason) for r in decoded.rejected])


def _require_event_shape(body: bytes) -> None:
    """BadBody unless ``body`` is a JSON object or a non-empty JSON array."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadBody(f"body is not valid JSON: {exc}") from None
    if isinstance(doc, list) and not doc:
        raise BadBody("empty array: send at least one event")
    if not isinstance(doc, dict | list):
        raise BadBody("expected one event object or an array of event objects")


def pack(events: Sequence[EventFields], max_bytes: int) -> list[tuple[bytes, bytes]]:
    """(key, value) messages for `events`: one JSON array keyed by its first event id.

    Events are re-encoded as validated (UTC times, defaults filled in), which can
    make them larger than the request was; should an array exceed the worker's
    message limit (`max_message_bytes`) it is split, each part keyed by its own
    first event id, rather than dead-lettered whole."""
    messages: list[tuple[bytes, bytes]] = []
    chunk: list[bytes] = []
    key = b""
    size = 2  # the brackets
    for event in events:
        part = orjson.dumps(event.model_dump(mode="json", exclude_none=True))
        if chunk and size + len(part) + 1 > max_bytes:
            messages.append((key, b"[" + b",".join(chunk) + b"]"))
            chunk, size = [], 2
        if not chunk:
            key = event.event_id.encode()
        chunk.append(part)
        size += len(part) + 1
    if chunk:
        messages.append((key, b"[" + b",".join(chunk) + b"]"))
    return messages
