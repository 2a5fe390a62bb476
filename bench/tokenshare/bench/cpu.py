"""CPU seconds of the processes a run involves, read from /proc.

A process's user and system time (`utime`, `stime` in /proc/<pid>/stat)
covers all its threads, so an embedded chDB's threads are counted with the
Python process that hosts them. A run's CPU is the growth of the sum over a
process tree (the process and its live descendants) between two samples: the
clock start (consumer group stable, so start-up is left out) and the moment
the run's last offset was committed. The shared Kafka broker is not counted:
it does the same work for every pipeline.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class Stat:
    """What the bench reads of one /proc/<pid>/stat line."""

    pid: int
    ppid: int
    cpu_ticks: int  # utime + stime


def parse_stat(line: str) -> Stat:
    """One /proc/<pid>/stat line. The command name (field 2) may hold spaces and
    parentheses, so the fields are counted from its last ')'."""
    head, _, rest = line.rpartition(")")
    pid = int(head.split("(", 1)[0])
    fields = rest.split()
    # rest starts at field 3 (state): ppid is field 4, utime 14, stime 15.
    return Stat(pid=pid, ppid=int(fields[1]), cpu_ticks=int(fields[11]) + int(fields[12]))


def tree(root: int, stats: Iterable[Stat]) -> list[Stat]:
    """`root` and its descendants among `stats`."""
    children: dict[int, list[Stat]] = {}
    by_pid: dict[int, Stat] = {}
    for s in stats:
        by_pid[s.pid] = s
        children.setdefault(s.ppid, []).append(s)
    if root not in by_pid:
        return []
    out, todo = [], [by_pid[root]]
    while todo:
        s = todo.pop()
        out.append(s)
        todo.extend(children.get(s.pid, ()))
    return out


def read_stats(proc: Path = PROC) -> list[Stat]:
    stats = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stats.append(parse_stat((entry / "stat").read_text()))
        except (OSError, ValueError, IndexError):
            continue  # gone between listing and reading
    return stats


def cpu_seconds(roots: Iterable[int]) -> dict[int, float]:
    """CPU seconds so far of each root's process tree (one /proc scan)."""
    stats = read_stats()
    return {root: sum(s.cpu_ticks for s in tree(root, stats)) / TICKS for root in roots}


class CpuMeter:
    """CPU seconds a set of process trees spends between `start` and `read`."""

    def __init__(self, pids: Iterable[int]) -> None:
        self.pids = list(pids)
        self.base: dict[int, float] = {}

    def start(self) -> None:
        self.base = cpu_seconds(self.pids)

    def read(self) -> dict[int, float]:
        """Seconds per root pid since `start`."""
        return spent(self.base, cpu_seconds(self.pids))


def spent(before: Mapping[int, float], after: Mapping[int, float]) -> dict[int, float]:
    """Growth per pid; a tree that vanished before the second sample counts 0."""
    return {pid: max(after.get(pid, start) - start, 0.0) for pid, start in before.items()}


@dataclass(frozen=True, slots=True)
class RunCost:
    """One timed run: events stored, wall seconds, CPU seconds of its processes."""

    events: int
    seconds: float
    cpu_s: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def cpu_per(self, events: int) -> float:
        """CPU seconds per `events` stored events (200k: the issue's unit; 1M: the bill)."""
        return self.cpu_s * events / self.events
