"""Properties of the events-topic decoder and the event contract, over generated input.

Why properties and not more examples: `decode` meets whatever any producer
writes, and one input it does not expect either stops a partition (an
exception is a poison pill: the worker fails the batch, restarts, reads the
message again) or lets corrupt figures into the shares (an invalid event
accepted). So, for inputs no one wrote by hand:

(a) any bytes: decode returns, and accounts for every input once;
(b) valid events survive encode -> decode unchanged;
(c) mutated events (wrong types, boundary and non-finite numbers, timestamps
    from year 1 to 9999 at any offset, missing and extra keys, long and
    non-ASCII strings) are either accepted and meet every contract rule, or
    rejected with a reason; the same holds for validation of Python dicts;
(d) in an array mixing valid and invalid elements, the valid ones come out in
    order and exactly the invalid positions are rejected.

The contract oracle (`contract_violations`) and the accounting oracle are
shared with the fuzz target, `bench/fuzz_decode.py`, which explores further
for a fixed time (`make fuzz`). Runs are derandomized so that CI sees the same
examples every time; set TOKENSHARE_HYPOTHESIS_EXPLORE=1 to draw new ones. How many:
HYPOTHESIS_PROFILE=ci (`make test`) draws five times the default (`make unit`).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tokenshare.bench.fuzz_decode import (
    ObjectPairs,
    Raw,
    accounting_violations,
    contract_violations,
    loose_json,
)
from tokenshare.schema.event import MAX_COST_USD, MAX_TOKENS, EventFields, TokenEvent, epoch_ms
from tokenshare.schema.wire import decode, encode, encode_one

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX = 1024 * 1024
# As many examples as the hypothesis profile says (tests/conftest.py: 200 under `make test`).
PROPERTY = settings(
    deadline=None,
    derandomize=os.environ.get("TOKENSHARE_HYPOTHESIS_EXPLORE") != "1",
)
# Each example is up to a dozen events: two fifths as many.
BATCHES = settings(PROPERTY, max_examples=settings.default.max_examples * 2 // 5)
FIELDS = list(TokenEvent.model_fields)
INT_FIELDS = {"prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens",
              "tool_calls", "latency_ms"}  # fmt: skip
DEFAULTS = {name: f.default for name, f in TokenEvent.model_fields.items() if not f.is_required()}

# --- valid events --------------------------------------------------------------------------

ALNUM = "ABCXYZabcxyz0189"
label = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(ALNUM),
    st.text(alphabet=ALNUM + " ._/:-", max_size=63),
)
offsets = st.integers(-1439, 1439).map(lambda m: timezone(timedelta(minutes=m)))
free_text = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=128)


@st.composite
def valid_docs(draw: st.DrawFn, event_id: str | None = None) -> dict[str, Any]:
    """A valid event as its JSON document; optional fields absent, null or set."""
    completion = draw(st.integers(0, MAX_TOKENS))
    prompt = draw(st.integers(0, MAX_TOKENS))
    instant = draw(st.datetimes(datetime(2023, 1, 1), datetime(2026, 1, 1), timezones=st.just(UTC)))
    ts = instant.astimezone(draw(offsets)).isoformat()
    doc: dict[str, Any] = {
        "event_id": event_id or draw(st.from_regex(r"[A-Za-z0-9._:@-]{1,128}", fullmatch=True)),
        "ts": ts.replace("+00:00", "Z") if draw(st.booleans()) else ts,
        "model": draw(
            st.from_regex(
                r"[A-Za-z0-9][A-Za-z0-9._~-]{0,63}/[A-Za-z0-9][A-Za-z0-9._:~@+-]{0,127}",
                fullmatch=True,
            )
        ),
        "provider": draw(label),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
    }
    optional: dict[str, st.SearchStrategy[Any]] = {
        "reasoning_tokens": st.integers(0, completion),
        "cached_tokens": st.integers(0, prompt),
        "cost_usd": st.floats(0, MAX_COST_USD) | st.integers(0, int(MAX_COST_USD)),
        "app_id": st.none() | free_text,
        "user_id": st.none() | free_text,
        "category": st.none() | label,
        "region": st.none() | label,
        "finish_reason": st.none() | label,
        "language": st.none()
        | st.from_regex(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}", fullmatch=True),
        "tool_calls": st.integers(0, 10_000),
        "latency_ms": st.none() | st.integers(0, 3_600_000),
        "streamed": st.booleans(),
    }
    for name, values in optional.items():
        if draw(st.booleans()):
            doc[name] = draw(values)
    return doc


def as_event(doc: dict[str, Any]) -> EventFields:
    (ev,), rejected = decode(orjson.dumps(doc), MAX)
    assert not rejected
    return ev


# --- (a) any bytes -------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=20,
)


def assert_accounted(value: bytes | None, max_bytes: int) -> None:
    events, rejected = decode(value, max_bytes)
    assert accounting_violations(value, max_bytes, events, rejected) == []
    for ev in events:
        assert contract_violations(ev) == [], ev


DEEP = b"[" + b"[" * 300 + b"]" * 300 + b"]"


@PROPERTY
@given(
    value=st.binary(max_size=3000)
    | json_values.map(loose_json)
    | st.lists(json_values | valid_docs(), max_size=6).map(loose_json)
    | st.lists(valid_docs(), min_size=1, max_size=4)
    .map(orjson.dumps)
    .flatmap(
        lambda v: st.integers(0, len(v)).map(lambda cut: v[:cut])  # truncated batches
    ),
    max_bytes=st.just(MAX) | st.integers(0, 4000),
)
@example(value=b"", max_bytes=MAX)
@example(value=b"  \n ", max_bytes=MAX)
@example(value=b"[1, 2, 3]", max_bytes=MAX)
@example(value=b"[NaN]", max_bytes=MAX)
@example(value=b"[1" + b"0" * 400 + b"]", max_bytes=MAX)
@example(value=b"\xef\xbb\xbf[]", max_bytes=MAX)
@example(value=b'["\xff"]', max_bytes=MAX)
@example(value=b"[" * 2000, max_bytes=MAX)
# An element nested past orjson's encoder depth (254): re-encoding it for the
# dead letter must not raise.
@example(value=DEEP, max_bytes=MAX)
def test_any_bytes_decode_without_raising_and_every_input_is_accounted_for(
    value: bytes, max_bytes: int
) -> None:
    assert_accounted(value, max_bytes)


def test_tombstone_is_one_rejection() -> None:
    assert_accounted(None, MAX)


# --- (b) round trip ------------------------------------------------------------------------


@BATCHES
@given(docs=st.lists(valid_docs(), min_size=1, max_size=12))
def test_valid_events_round_trip_through_encode_and_decode(docs: list[dict[str, Any]]) -> None:
    events = [as_event(d) for d in docs]
    again, rejected = decode(encode(events), MAX)
    assert not rejected and again == events
    for ev in events:
        (one,), rejected = decode(encode_one(ev), MAX)
        assert not rejected and one == ev


@PROPERTY
@given(doc=valid_docs())
def test_validation_keeps_values_and_normalises_ts_to_utc(doc: dict[str, Any]) -> None:
    ev = as_event(doc)
    assert contract_violations(ev) == []
    for name in FIELDS:
        if name == "ts":
            # The same instant; the worker stores its epoch ms, the contract model UTC.
            assert ev.ts == datetime.fromisoformat(doc["ts"])
            assert (ev.ts - EPOCH) // timedelta(milliseconds=1) == epoch_ms([ev.ts])[0]
            assert TokenEvent.model_validate_json(orjson.dumps(doc)).ts.tzinfo == UTC
        elif name == "cost_usd" and name in doc:
            assert ev.cost_usd == doc["cost_usd"] and type(ev.cost_usd) is float
        else:
            assert getattr(ev, name) == doc.get(name, DEFAULTS.get(name)), name


# --- (c) mutated events --------------------------------------------------------------------

numbers = (
    st.integers()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.sampled_from([-1, 0, MAX_TOKENS, MAX_TOKENS + 1, 2**63, 2**64, -0.0, 1.0, 1e308])
    | st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-0", "1E2", "1" + "0" * 400]).map(
        Raw
    )
)
strings = (
    st.text(max_size=40)
    | st.text(st.characters(), max_size=40)  # surrogates included: written as \\ud800 escapes
    | st.integers(129, 20_000).map(lambda n: "a" * n)
    | st.sampled_from(["", "12", "1e3", "NaN", "true", "ev-1\n", "a/b\n", "ünï/模型", "😀"])
)
wild = (
    numbers
    | strings
    | st.none()
    | st.booleans()
    | st.lists(st.integers(), max_size=3)
    | st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)
)
# Any instant of years 1-9999 at any offset (the conversion to UTC can leave the
# representable range at either end), written in the forms gateways get wrong.
# Wall-clock times: anywhere, in the accepted range, or a few minutes either side
# of an edge (the contract's lower bound, the first and last representable days).
wall_times = st.one_of(
    st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999_999)),
    st.datetimes(datetime(2023, 1, 2), datetime(2026, 1, 1)),
    st.sampled_from(
        [datetime(2023, 1, 1), datetime(1, 1, 1, 0, 5), datetime(9999, 12, 31, 23, 55)]
    ).flatmap(lambda edge: st.integers(-240, 240).map(lambda s: edge + timedelta(seconds=s))),
)
any_ts = st.builds(
    lambda naive, tz, form: form(naive, naive.replace(tzinfo=tz)),
    wall_times,
    offsets,
    st.sampled_from(
        [
            lambda naive, aware: aware.isoformat(),
            lambda naive, aware: aware.isoformat().replace("+00:00", "Z"),
            lambda naive, aware: aware.isoformat(sep=" "),
            lambda naive, aware: naive.isoformat(),
            lambda naive, aware: naive.isoformat() + "z",
            lambda naive, aware: naive.isoformat() + "+24:00",
            lambda naive, aware: int(aware.timestamp()),
        ]
    ),
)


# Values on the accepted side of a bound (the oracle decides, not this list).
EDGES: list[dict[str, Any]] = [
    {"prompt_tokens": MAX_TOKENS},
    {"completion_tokens": MAX_TOKENS},
    {"completion_tokens": MAX_TOKENS, "reasoning_tokens": MAX_TOKENS},
    {"cost_usd": 0},
    {"cost_usd": MAX_COST_USD},
    {"cost_usd": 5e-324},
    {"tool_calls": 10_000},
    {"latency_ms": 3_600_000},
    {"latency_ms": None},
    {"event_id": "a" * 128},
    {"provider": "a" * 64},
    {"app_id": "😀" * 128},
    {"language": "abc-12345678-ab"},
    {"ts": "2023-01-01T00:00:00Z"},
    {"ts": "2023-01-01T23:58:00+23:59"},
    {"ts": "2022-12-31T00:01:00-23:59"},
]


@st.composite
def mutated_docs(draw: st.DrawFn) -> ObjectPairs:
    """A valid event with 1-3 mutations, as ordered pairs (a key may repeat)."""
    doc = draw(valid_docs())
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["set", "ts", "ts", "delete", "extra", "parts", "long", "edge"]))
        name = draw(st.sampled_from(FIELDS))
        if op == "set":
            doc[name] = draw(wild)
        elif op == "ts":
            doc["ts"] = draw(any_ts)
        elif op == "delete":
            doc.pop(name, None)
        elif op == "extra":
            doc[draw(st.text(max_size=12))] = draw(wild)
        elif op == "parts":
            part, whole = draw(st.sampled_from([("reasoning_tokens", "completion_tokens"),
                                                ("cached_tokens", "prompt_tokens")]))  # fmt: skip
            base = doc.get(whole) if type(doc.get(whole)) is int else 0
            doc[part] = base + draw(st.sampled_from([-1, 0, 1, MAX_TOKENS]))
        elif op == "long":
            doc[name] = draw(st.sampled_from("aé😀/.-: ")) * draw(
                st.sampled_from([64, 65, 129, 5000])
            )
        else:
            doc.update(draw(st.sampled_from(EDGES)))
    pairs = ObjectPairs(doc.items())
    if draw(st.integers(0, 19)) == 0:
        pairs.append((draw(st.sampled_from(FIELDS)), draw(wild)))  # a repeated key
    return pairs


def accepted_is_faithful(pairs: ObjectPairs, ev: TokenEvent) -> list[str]:
    """An accepted event holds exactly what was sent, of the type it was sent as
    ("12" is not 12, 1.0 is not 1, true is not 1): strictness, not coercion."""
    doc = dict(pairs)  # the last of repeated keys, as JSON parsers read it
    out = []
    for name in FIELDS:
        if name not in doc:
            if getattr(ev, name) != DEFAULTS.get(name, object()):
                out.append(f"{name}: absent, but {getattr(ev, name)!r} instead of the default")
            continue
        sent, got = doc[name], getattr(ev, name)
        if name == "ts":
            if not isinstance(sent, str):
                out.append(f"ts: accepted from {sent!r}")
        elif name in INT_FIELDS and sent is not None and type(sent) is not int:
            out.append(f"{name}: accepted {sent!r} as {got!r}")
        elif name == "cost_usd" and (type(sent) not in (int, float) or sent != got):
            out.append(f"cost_usd: accepted {sent!r} as {got!r}")
        elif name not in ("ts", "cost_usd") and (type(sent) is not type(got) or sent != got):
            out.append(f"{name}: sent {sent!r}, stored {got!r}")
    return out


Y1 = {"event_id": "y1", "ts": "0001-01-01T00:30:00+01:00", "model": "a/b", "provider": "p",
      "prompt_tokens": 1, "completion_tokens": 1}  # fmt: skip


@PROPERTY
@given(pairs=mutated_docs())
# Offsets that move an instant of year 1 or 9999 out of datetime's range in UTC.
@example(pairs=ObjectPairs(Y1.items()))
@example(pairs=ObjectPairs({**Y1, "ts": "9999-12-31T23:30:00-01:00"}.items()))
def test_mutated_event_is_accepted_valid_or_rejected_with_a_reason(pairs: ObjectPairs) -> None:
    value = loose_json(pairs)
    events, rejected = decode(value, MAX)
    assert accounting_violations(value, MAX, events, rejected) == []
    event("accepted" if events else "rejected")  # --hypothesis-show-statistics: both arms run
    if events:
        (ev,) = events
        assert contract_violations(ev) == [], value
        assert accepted_is_faithful(pairs, ev) == [], value
    else:
        assert rejected[0].reason.strip()


@PROPERTY
@given(
    pairs=mutated_docs(),
    ts=st.builds(lambda naive, tz: naive.replace(tzinfo=tz), wall_times, st.none() | offsets),
)
@example(pairs=ObjectPairs(Y1.items()), ts=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))))
@example(
    pairs=ObjectPairs(Y1.items()),
    ts=datetime(9999, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-1))),
)
def test_python_validation_returns_a_valid_event_or_a_validation_error(
    pairs: ObjectPairs, ts: datetime
) -> None:
    """The producer's path (`TokenEvent.model_validate` on a dict with a datetime)."""
    doc = {k: v for k, v in pairs if not isinstance(v, Raw)}
    doc["ts"] = ts
    try:
        ev = TokenEvent.model_validate(doc)
    except ValidationError as exc:
        event("rejected")
        assert str(exc)
    else:
        event("accepted")
        assert contract_violations(ev) == []


# --- (d) arrays mixing valid and invalid elements ------------------------------------------

BREAKS: list[Any] = [
    lambda d: {**d, "prompt_tokens": -1},
    lambda d: {**d, "completion_tokens": MAX_TOKENS + 1},
    lambda d: {**d, "prompt_tokens": "12"},
    lambda d: {**d, "prompt_tokens": True},
    lambda d: {**d, "completion_tokens": 3.0},
    lambda d: {k: v for k, v in d.items() if k != "model"},
    lambda d: {**d, "event_id": ""},
    lambda d: {**d, "event_id": "has space"},
    lambda d: {**d, "ts": "2026-02-01T00:00:00"},
    lambda d: {**d, "ts": "2001-01-01T00:00:00Z"},
    lambda d: {**d, "ts": "2999-01-01T00:00:00Z"},
    lambda d: {**d, "reasoning_tokens": d["completion_tokens"] + 1},
    lambda d: {**d, "cached_tokens": d["prompt_tokens"] + 1},
    lambda d: {**d, "cost_usd": -0.5},
    lambda d: {**d, "model": "no slash"},
    lambda d: {**d, "streamed": "yes"},
    lambda d: {**d, "provider": ""},
    lambda d: 1,
    lambda d: "event",
    lambda d: None,
    lambda d: [d],
]


@st.composite
def mixed_arrays(draw: st.DrawFn) -> tuple[list[Any], list[str], list[int]]:
    """(elements, ids of the valid ones in order, positions of the invalid ones)."""
    valid = draw(st.lists(st.booleans(), max_size=12))
    items: list[Any] = []
    for i, ok in enumerate(valid):
        doc = draw(valid_docs(event_id=f"el-{i}"))
        items.append(doc if ok else draw(st.sampled_from(BREAKS))(doc))
    ids = [f"el-{i}" for i, ok in enumerate(valid) if ok]
    return items, ids, [i for i, ok in enumerate(valid) if not ok]


@BATCHES
@given(case=mixed_arrays())
def test_array_keeps_valid_elements_in_order_and_rejects_exactly_the_invalid_ones(
    case: tuple[list[Any], list[str], list[int]],
) -> None:
    items, ids, invalid = case
    value = orjson.dumps(items)
    events, rejected = decode(value, MAX)
    assert [e.event_id for e in events] == ids
    assert [r.index for r in rejected] == invalid
    for r in rejected:
        assert r.reason.strip()
        assert r.original == orjson.dumps(items[r.index])  # the element, for the dead letter
    assert accounting_violations(value, MAX, events, rejected) == []


@pytest.mark.parametrize("depth", [254, 255, 1023])
def test_deeply_nested_element_is_rejected_not_raised(depth: int) -> None:
    """orjson reads arrays nested up to 1024 deep but writes only up to 254: an
    element between the two must still reach the dead letters."""
    value = b"[" + b"[" * depth + b"]" * depth + b"]"
    events, rejected = decode(value, MAX)
    assert not events and [r.index for r in rejected] == [0]
