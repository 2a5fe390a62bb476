"""The producer validates before sending, with the worker's own decoder."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from tests.factories import event
from tokenshare.producers.kafka_producer import InvalidEvent, validate, validate_batch
from tokenshare.schema.wire import decode


def test_a_valid_batch_is_one_array_message_the_worker_decodes() -> None:
    events = [event(i) for i in range(5)]
    value = validate_batch(events)
    decoded, rejected = decode(value, len(value))
    assert [e.event_id for e in decoded] == [e["event_id"] for e in events] and not rejected


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"prompt_tokens": -1}, "prompt_tokens"),
        ({"reasoning_tokens": 10**6}, "reasoning_tokens exceeds completion_tokens"),
        ({"ts": "2999-01-01T00:00:00Z"}, "in the future"),
        ({"ts": "2020-01-01T00:00:00Z"}, "ts"),
    ],
)
def test_the_first_bad_event_of_a_batch_is_named(change: dict[str, object], reason: str) -> None:
    events = [event(i) for i in range(4)]
    events[2] = {**events[2], **change}
    with pytest.raises(InvalidEvent) as caught:
        validate_batch(events)
    assert str(caught.value).startswith("event 2 of the batch: ") and reason in str(caught.value)
    with pytest.raises(InvalidEvent, match=reason):
        validate(events[2])
    assert validate(events[1]) == orjson.dumps(events[1])


def test_not_an_event_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="one JSON object"):
        validate(b"[1, 2]")
    with pytest.raises(InvalidEvent, match="not encodable"):
        validate({"event_id": object()})


def test_throughput_processes_freeze_startup_objects_and_collect_less_often() -> None:
    code = (
        "import gc; from tokenshare.gc_policy import tune_for_throughput, YOUNG_THRESHOLD; "
        "tune_for_throughput(); "
        "assert gc.get_threshold()[0] == YOUNG_THRESHOLD, gc.get_threshold(); "
        "assert gc.get_freeze_count() > 1000, gc.get_freeze_count()"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
