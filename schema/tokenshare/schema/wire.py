"""Wire format of the events topic, and the one place that decodes it.

A Kafka message value is UTF-8 JSON (producers encode with orjson), either one
event object or an array of event objects, so that high-volume producers can
batch. Decoding validates a whole array in one pydantic-core call (Rust), then
the cross-field and clock rules over the batch (`event.rule_violations`); only
when either fails are the elements validated one by one, so that one bad event
costs the dead-letter topic that event and nothing else.

The worker's entry is `decode_columns`: it first tries `schema.column_check`,
which parses once and checks whole columns, and gives the columns the rows
need; whatever that cannot prove valid is decoded here the pydantic way, so
pydantic decides and words every rejection.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from tokenshare.schema import column_check
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


@dataclass(slots=True)
class DecodedRun:
    """Consecutive message values of one source partition, decoded as columns.

    `columns` holds the valid events of every message, in message order, by
    EventFields' field names in declaration order (`ts` in epoch ms);
    `counts[i]` of them came from message i. `rejected` pairs each rejected
    input with the position of its message."""

    columns: dict[str, list[Any]]
    counts: list[int]
    rejected: list[tuple[int, Rejected]] = field(default_factory=list)


#: EventFields' field names in declaration order (the order of a model's __dict__).
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in column_check.FIELDS)


def decode_run(values: Sequence[bytes | None], max_bytes: int) -> DecodedRun:
    """Decode message values into the valid events' columns and the rejected inputs.

    Each value is parsed once (orjson) and the events of all of them checked
    column by column in one go (`schema.column_check`), which is what makes
    single-event messages cheap too. When that cannot prove every event valid,
    the run is halved until the messages it cannot are alone, and those are
    decoded by `decode_message`, whose decisions and reasons these are always.
    """
    latest = latest_allowed_ms()
    parsed = [
        column_check.parse(v) if v is not None and len(v) <= max_bytes else None for v in values
    ]
    pieces: list[dict[str, list[Any]]] = []
    counts: list[int] = []
    rejected: list[tuple[int, Rejected]] = []

    slow = Decoded()  # events of consecutive messages decoded by pydantic, not yet columns

    def by_pydantic(i: int) -> None:
        decoded = decode_message(values[i], max_bytes)
        slow.events.extend(decoded.events)
        slow.ts_ms.extend(decoded.ts_ms)
        counts.append(len(decoded.events))
        rejected.extend((i, bad) for bad in decoded.rejected)

    def flush_slow() -> None:
        if slow.events:
            pieces.append(columns_of(slow))
            slow.events, slow.ts_ms = [], []

    # (first, end, whether a first-level span): a stack, popped in message order
    spans = [(lo, hi, True) for lo, hi in _spans([len(p) if p else 1 for p in parsed])]
    while spans:
        lo, hi, top = spans.pop()
        run = parsed[lo:hi]
        flood = top and _ODDS.flood()
        skip = flood and not _ODDS.probe()
        fast = None
        if not skip and None not in run:
            items = run[0] if hi - lo == 1 else list(chain.from_iterable(run))  # type: ignore[arg-type]
            fast = column_check.check(items, latest)  # type: ignore[arg-type]
            if top:
                _ODDS.record(failed=fast is None)
        if fast is not None:
            flush_slow()
            pieces.append(fast.columns)
            counts.extend(map(len, run))  # type: ignore[arg-type]
        elif flood:  # skipped, or the probe failed: halving would only add work
            for i in range(lo, hi):
                by_pydantic(i)
        elif hi - lo > 1:
            mid = (lo + hi) // 2
            spans += [(mid, hi, False), (lo, mid, False)]
        else:
            by_pydantic(lo)
    flush_slow()
    if len(pieces) == 1:
        return DecodedRun(pieces[0], counts, rejected)
    columns = {
        name: list(chain.from_iterable(piece[name] for piece in pieces)) for name in FIELD_NAMES
    }
    return DecodedRun(columns, counts, rejected)


class _Odds:
    """How often the column checks failed on recent spans: while most fail (a
    flood of invalid input, where halving spans only adds work), one span in
    16 still tries them, to notice when the flood is over."""

    __slots__ = ("failing", "tries")

    def __init__(self) -> None:
        self.failing = 0.0  # moving share of failed spans
        self.tries = 0

    def flood(self) -> bool:
        return self.failing >= 0.5

    def probe(self) -> bool:
        self.tries += 1
        return self.tries % 16 == 0

    def record(self, *, failed: bool) -> None:
        self.failing = 0.9 * self.failing + (0.1 if failed else 0.0)


_ODDS = _Odds()

#: Events checked together: enough to spread the per-column costs, few enough
#: to stay in the CPU caches (per event, 5000 at once cost 25% more than 500).
SPAN_EVENTS = 500


def _spans(sizes: list[int]) -> list[tuple[int, int]]:
    """Consecutive messages grouped to about SPAN_EVENTS events each, as a stack
    (last span first) so that popping yields them in message order."""
    spans = []
    lo = total = 0
    for i, n in enumerate(sizes):
        total += n
        if total >= SPAN_EVENTS:
            spans.append((lo, i + 1))
            lo, total = i + 1, 0
    if lo < len(sizes):
        spans.append((lo, len(sizes)))
    spans.reverse()
    return spans


def columns_of(decoded: Decoded) -> dict[str, list[Any]]:
    """The decoded events as columns, by transposing in C (zip), `ts` in epoch ms."""
    if not decoded.events:
        return {name: [] for name in FIELD_NAMES}
    values = zip(*[tuple(e.__dict__.values()) for e in decoded.events], strict=True)
    columns = dict(zip(FIELD_NAMES, map(list, values), strict=True))
    columns["ts"] = decoded.ts_ms
    return columns


def rejections(value: bytes, events: list[Any] | None = None) -> list[Rejected]:
    """Why `value` (a message the producer is about to send) would be rejected,
    or [] when the worker will accept every event in it.

    ``events`` are the producer's own dicts that `value` encodes, if it has
    them: checking those skips parsing `value` again."""
    items = events if events is not None else column_check.parse(value)
    if items is not None and column_check.check(items, latest_allowed_ms()) is not None:
        return []
    return decode_message(value, len(value)).rejected


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
