"""Decoding of the events topic: valid events pass, each bad input is named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from pydantic import ValidationError

from tests.factories import bad_inputs, event
from tokenshare.schema.event import TokenEvent
from tokenshare.schema.wire import decode, decode_message, encode

MAX = 1024 * 1024
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def test_single_event_and_array_decode() -> None:
    one, bad = decode(orjson.dumps(event(1)), MAX)
    assert [e.event_id for e in one] == ["ev-0-1"] and not bad
    many, bad = decode(encode([event(i) for i in range(5)]), MAX)
    assert [e.event_id for e in many] == [f"ev-0-{i}" for i in range(5)] and not bad


@pytest.mark.parametrize(
    ("ts", "utc"),
    [
        ("2026-02-10T12:00:00+08:00", "2026-02-10T04:00:00+00:00"),
        ("2026-02-10T04:00:00.0019Z", "2026-02-10T04:00:00.001900+00:00"),
        ("2023-01-01T00:30:00+01:00", None),  # 2022-12-31 23:30 UTC: before MIN_TS
        ("2022-12-31T23:30:00-01:00", "2023-01-01T00:30:00+00:00"),
    ],
)
def test_ts_normalised_to_utc(ts: str, utc: str | None) -> None:
    """Stored as epoch ms of the UTC instant (the worker's path) and as UTC in the contract."""
    decoded = decode_message(orjson.dumps(event(1, ts=ts)), MAX)
    if utc is None:
        assert not decoded.events and "2023-01-01" in decoded.rejected[0].reason
        with pytest.raises(ValidationError):
            TokenEvent.model_validate_json(orjson.dumps(event(1, ts=ts)))
        return
    expected = datetime.fromisoformat(utc)
    assert decoded.ts_ms == [(expected - EPOCH) // timedelta(milliseconds=1)]  # floor
    assert TokenEvent.model_validate_json(orjson.dumps(event(1, ts=ts))).ts.isoformat() == utc


@pytest.mark.parametrize(("what", "value"), bad_inputs(), ids=[w for w, _ in bad_inputs()])
def test_every_bad_input_is_rejected_with_a_reason(what: str, value: bytes) -> None:
    events, rejected = decode(value, MAX)
    assert not events
    assert rejected and all(r.reason for r in rejected)
    assert len(rejected) == 1 and rejected[0].original == value


def test_bad_element_costs_only_itself() -> None:
    docs = [event(i) for i in range(4)]
    docs[2] = {**docs[2], "prompt_tokens": -1}
    events, rejected = decode(orjson.dumps(docs), MAX)
    assert [e.event_id for e in events] == ["ev-0-0", "ev-0-1", "ev-0-3"]
    assert len(rejected) == 1 and rejected[0].index == 2
    assert "prompt_tokens" in rejected[0].reason
    assert orjson.loads(rejected[0].original)["event_id"] == "ev-0-2"


def test_oversized_and_empty_messages() -> None:
    big = orjson.dumps([event(i) for i in range(50)])
    events, rejected = decode(big, 1024)
    assert not events and "exceeds" in rejected[0].reason and rejected[0].original == big
    events, rejected = decode(None, MAX)
    assert not events and "empty" in rejected[0].reason


def test_unknown_fields_are_ignored_not_refused() -> None:
    events, rejected = decode(orjson.dumps({**event(1), "new_gateway_field": 3}), MAX)
    assert len(events) == 1 and not rejected


def test_array_of_non_objects_rejects_each_element() -> None:
    events, rejected = decode(b"[1, 2, 3]", MAX)
    assert not events and [r.index for r in rejected] == [0, 1, 2]
    assert [r.original for r in rejected] == [b"1", b"2", b"3"]
