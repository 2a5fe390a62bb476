"""Wire format of the events topic, and the one place that decodes it.

A Kafka message value is UTF-8 JSON (producers encode with orjson), either one
event object or an array of event objects, so that high-volume producers can
batch. Decoding validates a whole array in one pydantic-core call (Rust), then
the cross-field and clock rules over the batch (`event.rule_violations`); only
when either fails are the elements validated one by one, so that one bad event
costs the dead-letter topic that event and nothing else.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
from pydantic import TypeAdapter, ValidationError

from tokenshare.schema.event import (
    EventFields,
    epoch_ms,
    latest_allowed_ms,
    rule_violations,
)

_WHITESPACE = b" \t\r\n"


@functools.cache
def _adapters(
    model: type[EventFields],
) -> tuple[TypeAdapter[EventFields], TypeAdapter[list[EventFields]]]:
    """Validators of one event and of an array of them (built once per model)."""
    return TypeAdapter(model), TypeAdapter(list[model])  # type: ignore[valid-type]


@dataclass(frozen=True, slots=True)
class Rejected:
    """An input that is not a valid event: what it was, and why."""

    reason: str
    original: bytes  # the message value, or the array element re-encoded
    index: int | None = None  # position in an array message, None for the whole message


@dataclass(slots=True)
class Decoded:
    """One message value, decoded: valid events with their times, and the rest."""

    events: list[EventFields] = field(default_factory=list)
    ts_ms: list[int] = field(default_factory=list)  # epoch ms of each event's ts
    rejected: list[Rejected] = field(default_factory=list)


def describe(exc: ValidationError) -> str:
    """A short, human-readable reason: `field: message; ...` (first 5 errors)."""
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def decode(value: bytes | None, max_bytes: int) -> tuple[list[EventFields], list[Rejected]]:
    """Decode one message value into valid events and rejected inputs."""
    decoded = decode_message(value, max_bytes)
    return decoded.events, decoded.rejected


def decode_message(
    value: bytes | None, max_bytes: int, model: type[EventFields] = EventFields
) -> Decoded:
    """Decode one message value: fields in one Rust call, then the batch rules.

    ``model`` is the event class to build (an EventFields subclass such as TokenEvent,
    whose validators also normalise, for callers that re-encode what they accept)."""
    if value is None:
        return Decoded(
            rejected=[Rejected("empty message (tombstone): expected a JSON event or array", b"")]
        )
    if len(value) > max_bytes:
        reason = f"message of {len(value)} bytes exceeds the {max_bytes}-byte limit"
        return Decoded(rejected=[Rejected(reason, value)])
    one, many = _adapters(model)
    head = value.lstrip(_WHITESPACE)[:1]
    if head == b"[":
        try:
            events = many.validate_json(value)
        except ValidationError:
            return _decode_elements(value, one)
        ts_ms = epoch_ms([e.ts for e in events])
        if rule_violations(events, ts_ms, latest_allowed_ms()):
            return _decode_elements(value, one)  # rare: find the culprits one by one
        return Decoded(events, ts_ms)
    try:
        event = one.validate_json(value)
    except ValidationError as exc:
        return Decoded(rejected=[Rejected(describe(exc), value)])
    ts_ms = epoch_ms([event.ts])
    for _, reason in rule_violations([event], ts_ms, latest_allowed_ms()):
        return Decoded(rejected=[Rejected(reason, value)])
    return Decoded([event], ts_ms)


def _decode_elements(value: bytes, one: TypeAdapter[EventFields]) -> Decoded:
    try:
        items = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Decoded(rejected=[Rejected(f"not valid JSON: {exc}", value)])
    out = Decoded()
    for i, item in enumerate(items):
        try:
            raw = orjson.dumps(item)
        except orjson.JSONEncodeError:
            # orjson reads 1024 levels of nesting but writes only 254: such an
            # element is no event, but its bytes still go to the dead letters.
            out.rejected.append(
                Rejected("element nested too deeply to be an event", _deep(item), i)
            )
            continue
        try:
            event = one.validate_json(raw)
        except ValidationError as exc:
            out.rejected.append(Rejected(describe(exc), raw, i))
            continue
        ts_ms = epoch_ms([event.ts])
        for _, reason in rule_violations([event], ts_ms, latest_allowed_ms()):
            out.rejected.append(Rejected(reason, raw, i))
            break
        else:
            out.events.append(event)
            out.ts_ms.extend(ts_ms)
    return out


def _deep(item: object) -> bytes:
    """JSON of a deeply nested value (the rare path orjson refuses)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        return json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode()
    finally:
        sys.setrecursionlimit(limit)


def encode(events: Sequence[EventFields | dict[str, object]]) -> bytes:
    """Encode events as one batched message value."""
    return orjson.dumps(
        [
            e.model_dump(mode="json", exclude_none=True) if isinstance(e, EventFields) else e
            for e in events
        ]
    )


def encode_one(event: EventFields | dict[str, object]) -> bytes:
    if isinstance(event, EventFields):
        return orjson.dumps(event.model_dump(mode="json", exclude_none=True))
    return orjson.dumps(event)
