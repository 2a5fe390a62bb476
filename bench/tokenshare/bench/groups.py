"""Timing by consumer groups: a run starts when its group is stable with members
(it fetches at once) and ends when the group has committed every message of
its topic. Nothing polls the store while it works; the stored count is checked
once, after the clock stopped."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from kafka import TopicPartition

from tokenshare import kafka_clients
from tokenshare.settings import Settings


class GroupTimeout(RuntimeError):
    pass


class GroupWatch:
    """Committed offsets and state of consumer groups, from the broker (never the pipeline)."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.admin = kafka_clients.admin(settings, client_id=f"bench-{name}-watch")
        self.consumer = kafka_clients.consumer(settings, client_id=f"bench-{name}-watch")
        self.partitions = settings.partitions

    def close(self) -> None:
        for client in (self.admin, self.consumer):
            with contextlib.suppress(Exception):
                client.close()

    def _tps(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for p in range(self.partitions)]

    def end_offsets(self, topic: str) -> int:
        ends: dict[Any, int] = self.consumer.end_offsets(self._tps(topic))
        return sum(ends.values())

    def committed(self, group: str, topic: str) -> int:
        """Messages of `topic` that `group` has committed (summed over partitions)."""
        tps = self._tps(topic)
        offsets = self.admin.list_group_offsets({group: tps}).get(group, {})
        return sum(max(int(o.offset), 0) for tp, o in offsets.items() if tp in tps)

    def stable(self, group: str) -> bool:
        try:
            state = self.admin.describe_groups([group]).get(group, {})
        except Exception:  # coordinator not there yet: not stable
            return False
        return bool(state.get("group_state") == "Stable" and state.get("members"))

    def wait_stable(
        self, group: str, timeout: float, check: Callable[[], None], interval: float = 0.02
    ) -> float:
        """Monotonic time at which `group` was first seen stable with members.
        `check` raises if the process that should join died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            check()
            if self.stable(group):
                return time.monotonic()
            time.sleep(interval)
        raise GroupTimeout(f"group {group} did not become stable in {timeout:.0f}s")

    def wait_committed(
        self,
        group: str,
        topic: str,
        end: int,
        deadline: float,
        check: Callable[[], None],
        interval: float = 0.05,
    ) -> float:
        """Monotonic time at which `group` had committed `end` messages of `topic`."""
        while True:
            check()
            done = self.committed(group, topic)
            if done >= end:
                return time.monotonic()
            if time.monotonic() > deadline:
                raise GroupTimeout(
                    f"group {group} committed {done:,} of {end:,} messages of {topic}"
                )
            time.sleep(interval)
