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

#: How long a partition with unread messages may return none before it is suspect, in
#: seconds of polling: far above any healthy gap (a fetch waits at most 0.5 s).
STALL_S = 20.0
#: The same for a partition that has returned nothing since it was assigned: its first
#: fetch goes out at once. The stall seen most (a store started before its rows
#: arrive, about one start in three under load) is of this kind: a shorter wait
#: brings such a store back in about 10 s instead of 30, and ends sooner the busy
#: polling that comes with it (the client spins while it fetches nothing).
FIRST_S = 5.0
#: How often the watch looks, and how long a suspect is given to move before it
#: counts as stuck: new messages that reached an idle partition just before a look
#: are fetched well within it.
CHECK_S = 2.0


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

    A partition is stuck when two looks ``check_s`` apart both find it quiet for
    ``stall_s`` (``first_s`` when it has returned nothing since it was assigned)
    with messages past the same position: one look could catch
    messages that reached an idle partition a moment before it.

    Time here is time spent in ``poll()``: a long flush or a pause after a failed
    write is not time in which the consumer could have fetched.
    """

    stall_s: float = STALL_S
    check_s: float = CHECK_S
    first_s: float = FIRST_S
    clock: float = 0.0  # seconds spent polling
    last_read: dict[TopicPartition, float] = field(default_factory=dict)
    ever_read: set[TopicPartition] = field(default_factory=set)  # since assigned
    suspects: dict[TopicPartition, int] = field(default_factory=dict)  # -> position
    looked_at: float = 0.0
    asked_at: float | None = None  # the broker, for end offsets

    def polled(self, partitions: Iterable[TopicPartition], seconds: float) -> None:
        """One poll took ``seconds`` and returned messages of ``partitions``."""
        self.clock += seconds
        for tp in partitions:
            self.last_read[tp] = self.clock
            self.ever_read.add(tp)

    def restart(self) -> None:
        """Start over (after a fresh subscription): every partition is new again."""
        self.last_read.clear()
        self.ever_read.clear()
        self.suspects.clear()
        self.looked_at, self.asked_at = self.clock, None

    def stuck(self, consumer: Positions) -> list[Stuck]:
        """The assigned partitions found stuck by this look (see the class).

        Looks once per ``check_s``; asks the broker for end offsets only about
        partitions quiet for ``stall_s``, and at most once per ``stall_s`` unless
        one is suspect: an idle store sends one small request every 20 s, a busy
        one none.
        """
        now = self.clock
        if now - self.looked_at < self.check_s:
            return []
        self.looked_at = now
        assigned = consumer.assignment()
        for tp in list(self.last_read):
            if tp not in assigned:  # one that comes back is fresh again
                del self.last_read[tp]
                self.ever_read.discard(tp)
        quiet = [
            tp
            for tp in assigned
            if now - self.last_read.setdefault(tp, now)
            >= (self.stall_s if tp in self.ever_read else self.first_s)
        ]
        due = self.asked_at is None or now - self.asked_at >= self.stall_s
        if not quiet or not (self.suspects or due):
            self.suspects = {tp: o for tp, o in self.suspects.items() if tp in quiet}
            return []
        self.asked_at = now
        try:
            ends = consumer.end_offsets(quiet)
            positions = {tp: consumer.position(tp, timeout_ms=1_000) for tp in quiet}
        except KafkaError:  # a rebalance or a broker away: judge again next time
            return []
        suspects: dict[TopicPartition, int] = {}
        stuck = []
        for tp in sorted(quiet):
            position, end = positions.get(tp), ends.get(tp)
            if position is None or end is None or position >= end:
                continue
            if self.suspects.get(tp) == position:
                stuck.append(Stuck(tp, int(position), int(end), now - self.last_read[tp]))
            else:
                suspects[tp] = int(position)
        self.suspects = suspects
        return stuck
