"""The stall watch: a partition is stuck only when two looks find it quiet with
unread messages at the same position; idle partitions and fresh arrivals are not."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition

from tokenshare.sinks.stall import StallWatch

TP = TopicPartition("rows", 0)


@dataclass
class Offsets:
    position_at: int = 0
    end: int = 0
    asked: int = 0
    assigned: set[TopicPartition] = field(default_factory=lambda: {TP})

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def position(self, partition: TopicPartition, timeout_ms: int | None = None) -> Any:
        return self.position_at

    def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.asked += 1
        return {tp: self.end for tp in partitions}


def poll(watch: StallWatch, offsets: Offsets, seconds: float, read: bool = False) -> list[str]:
    watch.polled([TP] if read else [], seconds)
    return [str(s) for s in watch.stuck(offsets)]


def test_an_idle_partition_costs_one_request_per_stall_period_and_is_never_stuck() -> None:
    watch, offsets = StallWatch(stall_s=20, check_s=5, first_s=20), Offsets(position_at=7, end=7)
    found = [poll(watch, offsets, 1.0) for _ in range(100)]  # 100 s of empty polls
    assert found == [[]] * 100
    assert offsets.asked == 4  # quiet from 25 s on; asked at 25, 45, 65, 85 s


def test_messages_that_reach_an_idle_partition_just_before_a_look_are_not_stuck() -> None:
    watch, offsets = StallWatch(stall_s=20, check_s=5, first_s=20), Offsets(position_at=7, end=7)
    for _ in range(24):
        poll(watch, offsets, 1.0)
    offsets.end = 9  # two new messages, not fetched yet at the next look
    assert poll(watch, offsets, 1.0) == [] and watch.suspects == {TP: 7}
    offsets.position_at = 9  # a healthy consumer fetches them within the next look
    assert poll(watch, offsets, 1.0, read=True) == []
    for _ in range(5):
        assert poll(watch, offsets, 1.0) == []
    assert watch.suspects == {}


def test_a_partition_with_unread_messages_that_stays_put_is_stuck() -> None:
    watch, offsets = StallWatch(stall_s=20, check_s=5, first_s=20), Offsets(position_at=3, end=9)
    found = [poll(watch, offsets, 1.0) for _ in range(30)]
    # First seen at the look at 5 s, quiet from 25 s (suspect), stuck at the look after.
    assert [i for i, f in enumerate(found) if f] == [29]
    assert found[29] == ["rows:0 at offset 3 of 9, nothing read for 25 s"]


def test_time_outside_poll_does_not_count() -> None:
    watch, offsets = StallWatch(stall_s=20, check_s=5, first_s=20), Offsets(position_at=3, end=9)
    poll(watch, offsets, 5.0, read=True)
    # A flush of minutes happens between polls: the watch never sees it.
    assert [poll(watch, offsets, 0.1) for _ in range(10)] == [[]] * 10
    assert offsets.asked == 0


def test_a_partition_that_never_returned_anything_is_stuck_sooner() -> None:
    """A store started before its rows arrive: the stall seen most often."""
    watch, offsets = StallWatch(stall_s=20, check_s=2, first_s=5), Offsets(position_at=0, end=6)
    found = [poll(watch, offsets, 1.0) for _ in range(12)]
    # First seen at the look at 2 s, quiet from 7 s: suspect at 8 s, stuck at 10 s.
    assert [i for i, f in enumerate(found) if f] == [9]
    assert found[9] == ["rows:0 at offset 0 of 6, nothing read for 8 s"]


def test_once_a_partition_has_returned_messages_it_gets_the_long_wait() -> None:
    watch, offsets = StallWatch(stall_s=20, check_s=2, first_s=5), Offsets(position_at=3, end=3)
    poll(watch, offsets, 1.0, read=True)
    offsets.end = 9  # then it falls quiet with unread messages
    found = [poll(watch, offsets, 1.0) for _ in range(20)]
    assert found == [[]] * 20  # 20 s: not yet suspect under stall_s
