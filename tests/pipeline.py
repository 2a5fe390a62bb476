"""A running store and workers, started as an operator starts them (`tokenshare store`,
`tokenshare worker`), for the tests that drive the whole pipeline."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tokenshare.processes import free_ports, spawn, wait_until
from tokenshare.settings import Settings
from tokenshare.sinks.owner import data_path_of, read_owner
from tokenshare.streams.topics import group_lag


@dataclass
class Pipeline:
    settings: Settings
    store: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]

    def lags(self) -> dict[str, int | None]:
        """Messages not yet committed by the worker (ingest) and by the store."""
        s = self.settings
        return {
            "ingest": group_lag(s, s.ingest_group, s.events_topic),
            "store": group_lag(s, s.store_group, s.rows_topic),
        }

    def drained(self) -> bool:
        return all(lag == 0 for lag in self.lags().values())

    def wait_drained(self, timeout: float = 120) -> None:
        for proc in [self.store, *self.workers]:
            assert proc.poll() is None, f"a pipeline process exited: {self.logs()}"
        try:
            wait_until(self.drained, timeout, "worker and store to commit everything")
        except TimeoutError as stuck:
            raise AssertionError(f"{stuck} (lags {self.lags()})\n{self.logs()}") from stuck

    def add_worker(self) -> subprocess.Popen[bytes]:
        """Another worker in the same consumer group (own web port): a rebalance."""
        (port,) = free_ports(1)
        n = len(self.workers)
        env_settings = self.settings.model_copy(update={"worker_web_port": port})
        worker = spawn(
            env_settings,
            ["worker", "--web-port", str(port)],
            self.settings.home / "logs" / f"worker{n}.log",
        )
        self.workers.append(worker)
        return worker

    def start_store(self, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """(Re)start the store, and wait until it serves queries."""
        log = self.settings.home / "logs" / "store.log"
        self.store = spawn(self.settings, ["store"], log, env)
        wait_until(
            lambda: serving(self.settings) or self.store.poll() is not None, 120, "the store"
        )
        return self.store

    def start_worker(
        self, index: int = 0, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = self.settings.home / "logs" / f"worker{index}.log"
        worker = spawn(self.settings, ["worker"], log, env)
        if index < len(self.workers):
            self.workers[index] = worker
        else:
            self.workers.append(worker)
        return worker

    @contextmanager
    def supervised(self) -> Iterator[list[str]]:
        """Restart the store or a worker whenever it exits, as systemd or Kubernetes
        would, until the block ends; yields the list of restarts made."""
        restarts: list[str] = []
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.5):
                if self.store.poll() is not None:
                    restarts.append(f"store exited {self.store.returncode}")
                    self.start_store()
                for i, worker in enumerate(list(self.workers)):
                    if worker.poll() is not None:
                        restarts.append(f"worker {i} exited {worker.returncode}")
                        self.start_worker(i)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        try:
            yield restarts
        finally:
            done.set()
            thread.join()

    def logs(self) -> str:
        folder = self.settings.home / "logs"
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in folder.glob("*.log"))


def serving(settings: Settings) -> bool:
    """Whether the store owns its data path and serves queries."""
    owner = read_owner(data_path_of(settings.dsn))
    return owner is not None and owner.query_url is not None
