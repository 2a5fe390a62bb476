"""The column checks (`schema.column_check`) against pydantic, on many generated events.

The fast path may only accept: whatever it accepts, pydantic must accept with
the same values, and every run of messages must decode (`wire.decode_run`)
exactly as message-by-message pydantic decoding does, dead-letter reasons
included. And it must accept the traffic gateways actually send, or the worker
silently loses its speed.
"""

from __future__ import annotations

import math
import random
from datetime import datetime
from typing import Any

import orjson
import pytest

from tokenshare.bench.fuzz_decode import ObjectPairs, loose_json, mutated_event, valid_event
from tokenshare.producers.simulator import SimConfig, simulate
from tokenshare.schema import column_check
from tokenshare.schema.event import MAX_TOKENS, latest_allowed_ms
from tokenshare.schema.wire import (
    FIELD_NAMES,
    columns_of,
    decode_message,
    decode_run,
    rejections,
)

MAX = 1024 * 1024
GENERATED = 1_500  # mutated events and as many valid ones, per seed


def generated(seed: int) -> list[bytes]:
    """Single-event messages: mutated events (fuzz_decode's mutations, plus the
    cache-creation part and unusual but valid forms) and valid ones."""
    rnd = random.Random(seed)
    out = []
    for i in range(GENERATED):
        pairs, _ = mutated_event(rnd)
        if rnd.random() < 0.1:
            doc = dict(pairs)
            prompt, cached = doc.get("prompt_tokens"), doc.get("cached_tokens", 0)
            base = prompt - cached if type(prompt) is int and type(cached) is int else 0
            doc["cache_creation_tokens"] = base + rnd.choice([-1, 0, 1])
            pairs = ObjectPairs(doc.items())
        out.append(loose_json(pairs))
        valid = valid_event(i, rnd)
        if rnd.random() < 0.2:
            valid["cost_usd"] = rnd.choice([0, 1, 100_000, -0.0])  # ints are floats there
        if rnd.random() < 0.2:
            valid.pop(rnd.choice(["app_id", "latency_ms", "cached_tokens", "streamed"]), None)
        out.append(orjson.dumps(valid))
    return out


def pydantic_decoded(value: bytes | None) -> tuple[dict[str, list[Any]], int, list[Any]]:
    decoded = decode_message(value, MAX)
    return columns_of(decoded), len(decoded.events), decoded.rejected


def same_columns(a: dict[str, list[Any]], b: dict[str, list[Any]]) -> bool:
    """Equal values of equal types (1 == 1.0 == True would hide a conversion)."""
    return a.keys() == b.keys() and all(
        [(type(v), v) for v in a[k]] == [(type(v), v) for v in b[k]] for k in a
    )


@pytest.fixture(params=["arrow", "python"])
def ts_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each way of parsing ts columns: Arrow's (a worker) and Python's (a producer
    without Arrow)."""
    chosen = {"arrow": column_check._ms_by_arrow, "python": column_check._ms_by_python}
    monkeypatch.setattr(column_check, "_to_ms", lambda: chosen[request.param])
    return str(request.param)


@pytest.mark.parametrize("seed", [1])
def test_what_the_column_checks_accept_pydantic_accepts_with_the_same_values(
    seed: int, ts_parser: str
) -> None:
    values = generated(seed)
    accepted = rejected = 0
    for value in values:
        items = column_check.parse(value)
        fast = column_check.check(items, latest_allowed_ms()) if items is not None else None
        columns, count, bad = pydantic_decoded(value)
        if fast is None:
            rejected += 1
            continue
        accepted += 1
        assert not bad and count == fast.count == 1, value
        assert same_columns(fast.columns, columns), value
    # both sides are well represented, so the comparison means something
    assert accepted > len(values) // 3 and rejected > len(values) // 4


#: (ts, whether the column checks take it: the rest is left to pydantic)
TS_FORMS = [
    ("2026-02-09T10:11:12Z", True),
    ("2026-02-09T10:11:12.5Z", True),
    ("2026-02-09T10:11:12.123456+05:30", True),
    ("2026-02-09T23:59:59.9999-00:00", True),
    ("2023-01-01T00:00:00Z", True),  # the bound itself
    ("2026-02-29T10:11:12Z", False),  # no such day
    ("2026-02-09 10:11:12Z", False),  # pydantic takes a space; not this form
    ("2026-02-09T10:11:12", False),  # no offset
    ("2026-02-09T10:11:12.1234567Z", False),  # seven digits
    ("2026-02-09T24:00:00Z", False),
    ("2022-12-31T23:59:59.999Z", False),  # before the bound
    ("\u0662026-02-09T10:11:12Z", False),  # an Arabic-Indic digit (re's \d takes it)
]


@pytest.mark.parametrize(("ts", "fast"), TS_FORMS)
def test_both_ts_parsers_take_the_same_forms_with_pydantics_ms(ts: str, fast: bool) -> None:
    value = orjson.dumps({**valid_event(0, random.Random(0)), "ts": ts})
    columns, count, _ = pydantic_decoded(value)
    items = column_check.parse(value)
    assert items is not None
    for to_ms in (column_check._ms_by_arrow, column_check._ms_by_python):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(column_check, "_to_ms", lambda to_ms=to_ms: to_ms)
            got = column_check.check(items, latest_allowed_ms())
        assert (got is not None) == fast, (ts, to_ms.__name__)
        if got is not None:
            assert count == 1 and got.columns["ts"] == columns["ts"], (ts, to_ms.__name__)


@pytest.mark.parametrize("seed", [3])
def test_a_run_decodes_as_pydantic_decodes_each_message(seed: int) -> None:
    """Runs of single-event and array messages, a few invalid among them, as one
    partition's `getmany` gives them: same rows, counts, dead letters and reasons."""
    rnd = random.Random(seed)
    singles = generated(seed)[:1_500]
    values: list[bytes | None] = []
    for _ in range(300):
        kind = rnd.random()
        if kind < 0.6:
            values.append(rnd.choice(singles))
        elif kind < 0.95:
            elements = [rnd.choice(singles) for _ in range(rnd.randint(1, 40))]
            values.append(b"[" + b",".join(elements) + b"]")
        else:
            values.append(rnd.choice([None, b"", b"[]", b"{", b"[1, 2]", b"x" * (MAX + 1)]))
    for lo in range(0, len(values), 60):
        run_values = values[lo : lo + 60]
        run = decode_run(run_values, MAX)
        expected = [pydantic_decoded(v) for v in run_values]
        assert run.counts == [count for _, count, _ in expected]
        assert run.rejected == [(i, bad) for i, (_, _, r) in enumerate(expected) for bad in r]
        want = {name: [x for cols, _, _ in expected for x in cols[name]] for name in FIELD_NAMES}
        assert same_columns(run.columns, want)


def test_the_simulated_traffic_takes_the_fast_path() -> None:
    events = list(simulate(SimConfig(events=2_000, seed=7)))
    items = orjson.loads(orjson.dumps(events))
    fast = column_check.check(items, latest_allowed_ms())
    assert fast is not None and fast.count == len(events)
    assert fast.columns["event_id"] == [e["event_id"] for e in events]


def test_one_invalid_event_rejects_that_event_alone() -> None:
    rnd = random.Random(5)
    good = [orjson.dumps(valid_event(i, rnd)) for i in range(50)]
    bad = orjson.dumps({**valid_event(99, rnd), "prompt_tokens": MAX_TOKENS + 1})
    values: list[bytes | None] = [*good[:20], bad, *good[20:]]
    run = decode_run(values, MAX)
    assert run.counts == [1] * 20 + [0] + [1] * 30
    assert [(pos, r.reason) for pos, r in run.rejected] == [
        (20, "prompt_tokens: Input should be less than or equal to 20000000")
    ]
    assert run.columns["event_id"] == [orjson.loads(v)["event_id"] for v in good]


def test_producer_dicts_are_judged_as_their_json_is() -> None:
    """A producer checks its own dicts (no second parse): values orjson writes
    differently (a datetime, NaN as null, an int subclass) must not slip through."""
    rnd = random.Random(6)
    for i in range(1_500):
        _, py = mutated_event(rnd)
        if rnd.random() < 0.1:
            py["cost_usd"] = rnd.choice([math.nan, math.inf, True, 3])
        if rnd.random() < 0.1:
            py["ts"] = datetime.fromisoformat(valid_event(i, rnd)["ts"])
        try:
            raw = orjson.dumps([py])
        except (orjson.JSONEncodeError, TypeError):
            continue
        assert rejections(raw, [py]) == decode_message(raw, len(raw)).rejected, py
