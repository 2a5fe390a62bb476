"""Noticing a consumer that has stopped fetching partitions it owns.

kafka-python 3.0.12 can leave a partition unfetchable for good after a group join
that another join overtook: under load, every partition of the store kept the
"pending revocation" mark of the second join, so ``poll()`` returned nothing while
the group, the broker and the partitions' leaders were all healthy and the rows
waited in Kafka. The loop cannot see why through the public API, only that it
happens: a partition with messages past its position that returns none for
``stall_s`` seconds of polling. The remedy (``CheckpointLoop``) is to subscribe afresh, which
rebuilds every partition's fetch state from the last commit; nothing is lost,
because nothing past the last commit was stored as committed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from kafka import TopicPartition
from kafka.errors import KafkaError

#: How long a partition with unread messages may return none before it counts as stuck.
#: Far above any healthy gap: a fetch waits at most fetch_max_wait_ms (0.5 s).
STALL_S = 30.0


class Positions(Protocol):
    """What the watch reads of a kafka-python KafkaConsumer."""

    def assignment(self) -> set[TopicPartition]: ...
    def position(self, partition: TopicPartition, timeout_ms: int | None = None) -> Any: ...
    def end_offsets(self, partitions: list[TopicPartition]) -> Mapping[TopicPartition, int]: ...


@dataclass(frozen=True, slots=True)
class Stuck:
    """A partition that has unread messages and returned none for a while."""

    partition: TopicPartition
    position: int
    end: int
    quiet_s: float

    def __str__(self) -> str:
        tp = self.partition
        return (
            f"{tp.topic}:{tp.partition} at offset {self.position} of {self.end}, "
            f"nothing read for {self.quiet_s:.0f} s"
        )


@dataclass(slots=True)
class StallWatch:
    """When each assigned partition last returned messages, and which ones are stuck.

    Time here is time spent in ``poll()``: a long flush or a pause after a failed
    write is not time in which the consumer could have fetched.
    """

    stall_s: float = STALL_S
    clock: float = 0.0  # seconds spent polling
    last_read: dict[TopicPartition, float] = field(default_factory=dict)
    checked_at: float = 0.0

    def polled(self, partitions: Iterable[TopicPartition], seconds: float) -> None:
        """One poll took ``seconds`` and returned messages of ``partitions``."""
        self.clock += seconds
        for tp in partitions:
            self.last_read[tp] = self.clock

    def restart(self) -> None:
        """Start over (after a fresh subscription): every partition is new again."""
        self.last_read.clear()
        self.checked_at = self.clock

    def stuck(self, consumer: Positions) -> list[Stuck]:
        """The assigned partitions quiet for ``stall_s`` with messages past their position.

        Asks the broker for end offsets at most once per ``stall_s``, and only when
        a partition has been quiet that long, so an idle store costs one small
        request every half minute and a busy one none.
        """
        now = self.clock
        if now - self.checked_at < self.stall_s:
            return []
        self.checked_at = now
        assigned = consumer.assignment()
        for tp in list(self.last_read):
            if tp not in assigned:
                del self.last_read[tp]
        quiet = [tp for tp in assigned if now - self.last_read.setdefault(tp, now) >= self.stall_s]
        if not quiet:
            return []
        try:
            ends = consumer.end_offsets(quiet)
            positions = {tp: consumer.position(tp, timeout_ms=1_000) for tp in quiet}
        except KafkaError:  # a rebalance or a broker away: judge again next time
            return []
        stuck = []
        for tp in sorted(quiet):
            position, end = positions.get(tp), ends.get(tp)
            if position is not None and end is not None and position < end:
                stuck.append(Stuck(tp, int(position), int(end), now - self.last_read[tp]))
        return stuck
