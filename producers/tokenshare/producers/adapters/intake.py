"""Request bodies -> valid events and per-index rejections; events -> Kafka messages.

The ingest endpoint accepts the valid events of a request even when some are
not (each rejection names its index and reason), so one malformed event never
costs a gateway the rest of its batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
from pydantic import TypeAdapter, ValidationError

from tokenshare.schema.event import TokenEvent
from tokenshare.schema.wire import describe

_ONE = TypeAdapter(TokenEvent)
_MANY = TypeAdapter(list[TokenEvent])


class BadBody(ValueError):
    """The body as a whole is not events (not JSON, not an object or array, empty)."""


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int  # position in the request's array (0 for a single object)
    error: str


@dataclass(slots=True)
class Intake:
    events: list[TokenEvent] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


def parse_events(body: bytes) -> Intake:
    """Validate one event object or an array of them, as the worker would.

    The whole array is validated in one call (pydantic-core); only when that
    fails are the elements validated one by one to find which ones."""
    head = body.lstrip(b" \t\r\n")[:1]
    if head in (b"[", b"{"):
        try:
            if head == b"[":
                events = _MANY.validate_json(body)
                if events:
                    return Intake(events)
            else:
                return Intake([_ONE.validate_json(body)])
        except ValidationError:
            pass  # some element is invalid, or the JSON is: find out below
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadBody(f"body is not valid JSON: {exc}") from None
    if isinstance(doc, dict):
        items: list[object] = [doc]
    elif isinstance(doc, list):
        items = doc
    else:
        raise BadBody("expected one event object or an array of event objects")
    if not items:
        raise BadBody("empty array: send at least one event")
    intake = Intake()
    for index, item in enumerate(items):
        try:
            intake.events.append(_ONE.validate_json(orjson.dumps(item)))
        except ValidationError as exc:
            intake.rejected.append(Rejection(index, describe(exc)))
    return intake


def pack(events: Sequence[TokenEvent], max_bytes: int) -> list[tuple[bytes, bytes]]:
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
