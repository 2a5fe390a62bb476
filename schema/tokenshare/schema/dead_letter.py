"""What a message on the dead-letter topic carries.

The value is the refused input itself, byte for byte (for the worker: the
event or message as the producer sent it; for the store: the conflicting row
as JSON), so it can be fixed and sent again. The headers say why it was
refused and where it came from::

    error             why, in words (at most 4 KiB)
    source.topic      the topic it was read from
    source.partition  that topic's partition
    source.offset     the offset of the Kafka message
    source.index      the event's position in that message, when it held several

The key is the source message's key (the worker) or the event id (the store).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: Longest ``error`` header: a reason quoting a huge input must not make a huge header.
MAX_REASON_BYTES = 4096

ERROR = "error"
SOURCE_TOPIC = "source.topic"
SOURCE_PARTITION = "source.partition"
SOURCE_OFFSET = "source.offset"
SOURCE_INDEX = "source.index"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A refused input with where it came from and why it was refused."""

    original: bytes
    reason: str
    topic: str
    partition: int
    offset: int
    index: int | None = None
    key: bytes | None = None

    def headers(self) -> list[tuple[str, bytes]]:
        """The Kafka headers of the dead letter (the value is ``original``)."""
        headers = [
            (ERROR, self.reason.encode()[:MAX_REASON_BYTES]),
            (SOURCE_TOPIC, self.topic.encode()),
            (SOURCE_PARTITION, str(self.partition).encode()),
            (SOURCE_OFFSET, str(self.offset).encode()),
        ]
        if self.index is not None:
            headers.append((SOURCE_INDEX, str(self.index).encode()))
        return headers

    @classmethod
    def read(
        cls, value: bytes, headers: Iterable[tuple[str, bytes]], key: bytes | None = None
    ) -> DeadLetter:
        """A dead letter as consumed from the topic; KeyError/ValueError when the
        headers are not those of a dead letter."""
        found = dict(headers)
        index = found.get(SOURCE_INDEX)
        return cls(
            original=value,
            reason=found[ERROR].decode(errors="replace"),
            topic=found[SOURCE_TOPIC].decode(),
            partition=int(found[SOURCE_PARTITION]),
            offset=int(found[SOURCE_OFFSET]),
            index=None if index is None else int(index),
            key=key,
        )
