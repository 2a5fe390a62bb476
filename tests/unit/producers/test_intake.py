"""The ingest endpoint's body parsing: the worker's decoding, with BadBody for non-events."""

from __future__ import annotations

from datetime import UTC

import orjson
import pytest

from tests.factories import event
from tokenshare.producers.adapters.intake import BadBody, pack, parse_events
from tokenshare.schema.event import TokenEvent
from tokenshare.schema.wire import decode


def test_a_valid_array_is_accepted_whole_with_times_in_utc() -> None:
    docs = [event(i, ts="2025-03-01T12:00:00+02:00") for i in range(3)]
    intake = parse_events(orjson.dumps(docs))
    assert [e.event_id for e in intake.events] == [d["event_id"] for d in docs]
    assert intake.rejected == []
    assert all(isinstance(e, TokenEvent) and e.ts.tzinfo == UTC for e in intake.events)
    assert intake.events[0].ts.hour == 10


def test_bad_elements_are_rejected_by_index_and_the_rest_accepted() -> None:
    docs = [event(0), {**event(1), "prompt_tokens": -1}, event(2), "not an event"]
    intake = parse_events(orjson.dumps(docs))
    assert [e.event_id for e in intake.events] == [docs[0]["event_id"], docs[2]["event_id"]]
    assert [r.index for r in intake.rejected] == [1, 3]
    assert "prompt_tokens" in intake.rejected[0].error


def test_a_single_invalid_object_is_rejected_at_index_zero() -> None:
    intake = parse_events(orjson.dumps({**event(0), "model": ""}))
    assert intake.events == []
    assert [r.index for r in intake.rejected] == [0]


def test_the_endpoint_accepts_what_the_worker_accepts() -> None:
    docs = [event(i) for i in range(4)] + [{**event(9), "completion_tokens": "many"}]
    body = orjson.dumps(docs)
    worker_events, worker_rejected = decode(body, len(body))
    intake = parse_events(body)
    assert [e.event_id for e in intake.events] == [e.event_id for e in worker_events]
    assert [r.index for r in intake.rejected] == [r.index for r in worker_rejected]
    # What the endpoint sends on decodes to the same events again.
    (_key, value), *more = pack(intake.events, 1 << 20)
    assert not more
    again, rejected = decode(value, len(value))
    assert rejected == [] and [e.event_id for e in again] == [e.event_id for e in worker_events]


def test_an_element_nested_too_deeply_is_rejected_not_raised() -> None:
    deep = b"[" * 300 + b"]" * 300
    intake = parse_events(b"[" + orjson.dumps(event(0)) + b"," + deep + b"]")
    assert len(intake.events) == 1
    assert [r.index for r in intake.rejected] == [1]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2", "not valid JSON"),
        (b"[]", "empty array"),
        (b"  42", "expected one event object or an array"),
        (b'"an event"', "expected one event object or an array"),
    ],
)
def test_a_body_that_is_no_events_is_refused_whole(body: bytes, reason: str) -> None:
    with pytest.raises(BadBody, match=reason):
        parse_events(body)
