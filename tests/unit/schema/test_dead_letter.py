"""The dead-letter record: what the worker and the store put on the DLQ reads back whole."""

from __future__ import annotations

import orjson
import pytest

from tokenshare.schema.dead_letter import MAX_REASON_BYTES, DeadLetter
from tokenshare.sinks.dead_letters import conflict_letter


def test_a_dead_letter_reads_back_from_its_headers_and_value() -> None:
    letter = DeadLetter(b'{"ts": 1}', "missing event_id", "t.events", 3, 41, index=2, key=b"k")
    assert DeadLetter.read(letter.original, letter.headers(), key=b"k") == letter
    whole = DeadLetter(b"\xff", "not JSON", "t.events", 0, 7)  # a message refused as a whole
    assert "source.index" not in dict(whole.headers())
    assert DeadLetter.read(whole.original, whole.headers()) == whole


def test_a_long_reason_is_cut_in_the_header() -> None:
    letter = DeadLetter(b"x", "é" * MAX_REASON_BYTES, "t.events", 0, 0)
    error = dict(letter.headers())["error"]
    assert len(error) == MAX_REASON_BYTES
    assert DeadLetter.read(letter.original, letter.headers()).reason.startswith("é")


def test_headers_of_something_else_are_refused() -> None:
    with pytest.raises(KeyError):
        DeadLetter.read(b"x", [("source.topic", b"t")])


def test_a_conflicting_row_is_dead_lettered_from_its_source_position() -> None:
    row = {"event_id": "ev-1", "prompt_tokens": 12, "src_topic": "t.events",
           "src_partition": 5, "src_offset": 90, "src_index": 4}  # fmt: skip
    letter = conflict_letter(row)
    back = DeadLetter.read(letter.original, letter.headers(), letter.key)
    assert (back.topic, back.partition, back.offset, back.index) == ("t.events", 5, 90, 4)
    assert back.key == b"ev-1" and "different payload" in back.reason
    assert orjson.loads(back.original) == {"event_id": "ev-1", "prompt_tokens": 12}
