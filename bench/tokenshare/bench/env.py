"""The benchmark's own world: a Kafka broker on free ports in a temporary home,
the event set, the loaded topics, and every child process (stopped on exit)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

from tokenshare.bench.config import Sizes
from tokenshare.bench.cpu import RunCost
from tokenshare.bench.events import EventSet
from tokenshare.bench.ui import Ui
from tokenshare.localstack import LocalKafka
from tokenshare.processes import free_ports, spawn, stop
from tokenshare.producers.kafka_producer import EventProducer
from tokenshare.settings import Settings
from tokenshare.streams.topics import ensure_topics

Kind = Literal["single", "batched"]
PARTITIONS = 8


@dataclass(frozen=True, slots=True)
class Load:
    """An events topic filled by the producer, and how long that took."""

    settings: Settings
    kind: Kind
    events: int
    messages: int
    seconds: float
    cpu_s: float  # the bench process's CPU while producing (validation, kafka-python's sender)

    @property
    def cost(self) -> RunCost:
        return RunCost(self.events, self.seconds, self.cpu_s)


class BenchEnv:
    def __init__(self, sizes: Sizes, ui: Ui) -> None:
        self.sizes = sizes
        self.ui = ui
        self.home = Path(tempfile.mkdtemp(prefix="tokenshare-bench-"))
        port, controller_port = free_ports(2)
        self.kafka = LocalKafka(self.home, port=port, controller_port=controller_port)
        self.started = time.monotonic()
        self.deadline = self.started + sizes.budget_s
        self.children: list[subprocess.Popen[bytes]] = []
        self.loads: dict[tuple[Kind, int], Load] = {}
        self._events: EventSet | None = None
        self._names: set[str] = set()

    # --- lifecycle -----------------------------------------------------------------
    def __enter__(self) -> BenchEnv:
        try:
            self.kafka.start(timeout=180, console=self.ui.console)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop every child (newest first), then the broker; delete the temporary home."""
        for proc in reversed(self.children):
            with contextlib.suppress(Exception):
                stop(proc, timeout=20)
        self.children.clear()
        with contextlib.suppress(Exception):
            self.kafka.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    # --- children ------------------------------------------------------------------
    def spawn(self, settings: Settings, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        """`tokenshare <args>` with `settings` in its environment (tracked for cleanup)."""
        proc = spawn(settings, args, log)
        self.children.append(proc)
        return proc

    def spawn_python(
        self,
        python: str,
        module: str,
        args: list[str],
        log: Path,
        pythonpath: str | None = None,
    ) -> subprocess.Popen[bytes]:
        """`<python> -m <module> <args>` (a peer in its own virtualenv, a floor), tracked
        for cleanup. `pythonpath`: where that interpreter finds tokenshare."""
        log.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if pythonpath is not None:
            env["PYTHONPATH"] = pythonpath
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [python, "-m", module, *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.children.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
        stop(proc, timeout=timeout)
        if proc in self.children:
            self.children.remove(proc)

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    # --- data ----------------------------------------------------------------------
    @property
    def events(self) -> EventSet:
        if self._events is None:
            self.ui.step(f"generating the event set ({self.sizes.events:,} events)")
            self._events = EventSet.generate(self.sizes.events, self.sizes.seed)
        return self._events

    def settings(self, name: str) -> Settings:
        """Settings of one pipeline: own topics, own ClickHouse data path, free ports."""
        if name in self._names:
            raise ValueError(f"pipeline name {name!r} used twice")
        self._names.add(name)
        home = self.home / name
        home.mkdir(parents=True)
        query_port, web_port = free_ports(2)
        settings = Settings(
            home=home,
            kafka_bootstrap=self.kafka.bootstrap,
            topic_prefix=f"bench-{name}",
            partitions=PARTITIONS,
            clickhouse_dsn=f"chdb://{home / 'clickhouse'}",
            clickhouse_database="tokenshare",
            store_query_port=query_port,
            worker_web_port=web_port,
            worker_id=f"bench-{name}",
        )
        ensure_topics(settings)
        return settings

    def topic(self, kind: Kind, run: int) -> Load:
        """The events topic of run `run` of `kind`, filled by EventProducer (once).

        Single: the first `single_events` events, one per message (`send`).
        Batched: the whole set, `batch` events per message (`send_batch`).
        Both validate every event, as the producer always does.
        """
        key = (kind, run)
        if key in self.loads:
            return self.loads[key]
        settings = self.settings(f"{kind}-{run}")
        events = self.events
        with EventProducer(settings) as producer:
            if kind == "single":
                chosen = events.events[: self.sizes.single_events]
                started, cpu0 = time.perf_counter(), time.process_time()
                for event in chosen:
                    producer.send(event)
                producer.flush()
                count = len(chosen)
            else:
                chunks = events.chunks(self.sizes.batch)
                started, cpu0 = time.perf_counter(), time.process_time()
                for chunk in chunks:
                    producer.send_batch(chunk)
                producer.flush()
                count = len(events)
            seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu0
            stats = producer.stats
        if stats.failed or stats.acked != count:
            raise RuntimeError(
                f"loading {settings.events_topic}: {stats.acked:,} of {count:,} events acked, "
                f"{stats.failed:,} failed: {stats.errors[:3]}"
            )
        load = Load(settings, kind, count, stats.messages, seconds, cpu_s)
        self.loads[key] = load
        return load
