"""The store's dead letters: rows the writer refused as conflicting repeats.

Same event id, same day, other figures: not the same event, so neither is
stored over the other. The refused row goes to the dead-letter topic, with the
headers of every dead letter (``schema.dead_letter``), for someone to look at.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from tokenshare.schema.dead_letter import DeadLetter

if TYPE_CHECKING:
    from kafka import KafkaProducer

CONFLICT = (
    "duplicate event_id with a different payload (an event with this id "
    "and day is already stored with other figures)"
)


def conflict_letter(row: Mapping[str, Any]) -> DeadLetter:
    """The dead letter of a refused row: the row as JSON, from its source position."""
    return DeadLetter(
        original=orjson.dumps({k: v for k, v in row.items() if not k.startswith("src_")}),
        reason=CONFLICT,
        topic=str(row["src_topic"]),
        partition=int(row["src_partition"]),
        offset=int(row["src_offset"]),
        index=int(row["src_index"]),
        key=str(row["event_id"]).encode(),
    )


class ConflictDeadLetters:
    """Sends refused rows to the dead-letter topic; returns once the broker has them
    (the writer reports conflicts before its insert, so none is lost in a crash)."""

    def __init__(self, producer: KafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            letter = conflict_letter(row)
            self.producer.send(
                self.topic, value=letter.original, key=letter.key, headers=letter.headers()
            )
        self.producer.flush()

    def close(self) -> None:
        self.producer.close()
