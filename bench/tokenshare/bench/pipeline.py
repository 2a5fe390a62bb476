"""A running store and worker of one benchmark pipeline, and what to watch on them.

Started with `tokenshare.processes.spawn`, settings in the environment, the
same commands an operator runs. Watched from outside: the ingest group's
committed offsets (the worker alone), the store group's committed offsets
(the full path), each process's CPU time and peak RSS.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import TracebackType

from tokenshare.bench.env import BenchEnv
from tokenshare.bench.groups import GroupWatch
from tokenshare.processes import wait_until
from tokenshare.settings import Settings
from tokenshare.sinks.owner import data_path_of, read_owner
from tokenshare.sinks.query import run_query


class PipelineError(RuntimeError):
    pass


class Pipeline:
    def __init__(self, env: BenchEnv, settings: Settings, name: str) -> None:
        self.env = env
        self.settings = settings
        self.name = name
        self.store: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.watch = GroupWatch(settings, name)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def log(self, what: str) -> Path:
        return self.env.logs / f"{self.name}-{what}.log"

    def start_store(self, timeout: float = 120) -> None:
        self.store = self.env.spawn(self.settings, ["store"], self.log("store"))
        data_path = data_path_of(self.settings.dsn)

        def serving() -> bool:
            self.check()
            owner = read_owner(data_path)
            return owner is not None and owner.query_url is not None

        wait_until(serving, timeout, f"the store of {self.name}", interval=0.05)

    def start_worker(self, timeout: float = 120) -> float:
        """Start the worker; returns when (monotonic) its ingest group got its partitions."""
        self.worker = self.env.spawn(self.settings, ["worker"], self.log("worker"))
        return self.watch.wait_stable(self.settings.ingest_group, timeout, self.check)

    @property
    def pids(self) -> dict[str, int]:
        return {
            what: proc.pid
            for what, proc in (("worker", self.worker), ("store", self.store))
            if proc is not None
        }

    def check(self) -> None:
        """Raise with the log tail if the store or the worker died."""
        for what, proc in (("store", self.store), ("worker", self.worker)):
            if proc is not None and proc.poll() is not None:
                tail = _tail(self.log(what))
                raise PipelineError(
                    f"the {what} of {self.name} exited ({proc.returncode}):\n{tail}"
                )

    def end_offsets(self) -> int:
        return self.watch.end_offsets(self.settings.events_topic)

    def committed(self) -> int:
        """Events-topic messages the ingest group has committed."""
        return self.watch.committed(self.settings.ingest_group, self.settings.events_topic)

    def rows_end(self) -> int:
        return self.watch.end_offsets(self.settings.rows_topic)

    def store_committed(self) -> int:
        """Rows-topic messages the store group has committed (stored, then committed)."""
        return self.watch.committed(self.settings.store_group, self.settings.rows_topic)

    def count(self, table: str = "raw_events") -> int:
        db = self.settings.clickhouse_database
        return int(run_query(self.settings, f"SELECT count() FROM {db}.{table}").rows[0][0])

    def rss_mib(self, field: str = "VmHWM") -> dict[str, float]:
        """A memory field of /proc/<pid>/status for the worker and the store, MiB:
        VmHWM is the peak resident set since start, VmRSS the current one."""
        out = {}
        for what, proc in (("worker", self.worker), ("store", self.store)):
            if proc is not None and proc.poll() is None:
                out[what] = status_kib(proc.pid, field) / 1024
        return out

    def close(self) -> None:
        for proc in (self.worker, self.store):
            if proc is not None:
                self.env.stop(proc)
        self.watch.close()


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise PipelineError(f"no {field} for pid {pid}")


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
