"""Where the processes of a run spend their time: py-spy samples, summed by function.

py-spy samples a running process from outside, so the process runs the code it
always runs. Its raw output has one line per distinct stack, ``frame;...;leaf
count``, a frame being ``function (file:line)``. Summed by function (lines
dropped), each function gets its self share (the sampled frame was its own)
and its total share (it was anywhere on the stack). Time inside a C extension
(chDB, orjson, pyarrow) counts for the Python function that called it. Idle
threads are not sampled, so the shares are of the time the process was busy.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

RATE = 97  # samples per second; prime, so not in step with the processes' timers
TOP = 12  # functions listed per process


@dataclass(frozen=True, slots=True)
class Profile:
    """The busy samples of one process, summed by function."""

    samples: int
    self_counts: Counter[str]
    total_counts: Counter[str]

    @classmethod
    def parse(cls, raw: str) -> Profile:
        self_counts: Counter[str] = Counter()
        total_counts: Counter[str] = Counter()
        samples = 0
        for line in raw.splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            samples += n
            frames = [_function(frame) for frame in stack.split(";")]
            self_counts[frames[-1]] += n
            for frame in set(frames):
                total_counts[frame] += n
        return cls(samples, self_counts, total_counts)

    def table(self, top: int = TOP) -> str:
        """The top functions by self share, with their total share."""
        if not self.samples:
            return "(no busy samples)"
        width = max(len(name) for name, _ in self.self_counts.most_common(top))
        lines = [f"{'function':<{width}}   self  total"]
        for name, n in self.self_counts.most_common(top):
            share, total = n / self.samples, self.total_counts[name] / self.samples
            lines.append(f"{name:<{width}}  {share:5.1%}  {total:5.1%}")
        return "\n".join(lines)


def _function(frame: str) -> str:
    """``name (path/file.py:12)`` -> ``name (file.py)``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rpartition(":")[0] or where.rstrip(")")
    return f"{name} ({Path(path).name})" if path else name


def py_spy() -> str | None:
    """The py-spy executable next to this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Sampler:
    """py-spy on each named process while the ``with`` block runs.

    Never fails the run it watches: a process py-spy cannot attach to (no
    ptrace permission, py-spy missing) gets a note instead of a profile.
    """

    def __init__(self, pids: Mapping[str, int], folder: Path) -> None:
        self.pids = dict(pids)
        self.folder = folder
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.profiles: dict[str, Profile] = {}
        self.problems: dict[str, str] = {}

    def __enter__(self) -> Sampler:
        exe = py_spy()
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, pid in self.pids.items():
            if exe is None:
                self.problems[name] = "py-spy is not installed (`pip install py-spy`)"
                continue
            out = self.folder / f"{name}.raw"
            command = [exe, "record", "--pid", str(pid), "--rate", str(RATE)]
            command += ["--format", "raw", "--nonblocking", "--output", str(out)]
            self.procs[name] = subprocess.Popen(
                command,
                stdout=subprocess.DEVNULL,
                stderr=(self.folder / f"{name}.err").open("wb"),
                start_new_session=True,  # a Ctrl-C of the bench is not its stop
            )
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            out = self.folder / f"{name}.raw"
            if out.exists() and out.stat().st_size:
                self.profiles[name] = Profile.parse(out.read_text(errors="replace"))
            else:
                err = (self.folder / f"{name}.err").read_text(errors="replace").strip()
                last = err.splitlines()[-1] if err else "no message"
                self.problems[name] = f"py-spy wrote nothing: {last}"

    def text(self) -> str:
        """Each process's table, or why it has none."""
        parts = []
        for name in self.pids:
            if name in self.profiles:
                profile = self.profiles[name]
                head = f"{name}: {profile.samples:,} busy samples at {RATE}/s"
                parts.append(f"{head}\n{profile.table()}")
            else:
                parts.append(f"{name}: no profile ({self.problems.get(name, '?')})")
        return "\n\n".join(parts)
