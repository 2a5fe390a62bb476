"""g. Memory: peak RSS of the worker and the store after 1M and after 5M events.

One pipeline takes the event set again and again in batched messages (fresh
ids each round), the producer staying at most `WINDOW` events ahead of the
store. At each checkpoint of stored events the bench reads VmHWM (the peak
resident set since start) of both processes. Bounded state means the peak
after 5M stays close to the peak after 1M. If the run's time budget ends
first (the measure gets `memory_min_s` in any case), the last reading is reported
with the count it was taken at.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from tokenshare.bench.config import TITLES
from tokenshare.bench.env import BenchEnv
from tokenshare.bench.pipeline import Pipeline
from tokenshare.bench.report import Figure, Section
from tokenshare.producers.kafka_producer import EventProducer
from tokenshare.sinks.query import run_query

#: How far the producer may run ahead of the store, in events.
WINDOW = 400_000


class Feeder(threading.Thread):
    """Sends rounds of the batched event set while the store keeps up."""

    def __init__(self, env: BenchEnv, producer: EventProducer, total: int) -> None:
        super().__init__(name="feeder", daemon=True)
        self.env = env
        self.producer = producer
        self.total = total
        self.allowed = WINDOW
        self.sent = 0
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            events = self.env.events
            base = events.batched(self.env.sizes.batch)
            per = self.env.sizes.batch
            i = 0
            while self.sent < self.total and not self.stopping.is_set():
                if self.sent >= self.allowed:
                    time.sleep(0.02)
                    continue
                round_no, at = divmod(i, len(base))
                value = events.relabel(base[at], round_no)
                self.producer.send_raw(value)
                self.sent += min(per, len(events) - at * per)
                i += 1
            self.producer.flush()
        except BaseException as exc:  # reported by the main thread
            self.error = exc


def clickhouse_memory_mib(pipeline: Pipeline) -> float | None:
    """The embedded engine's own tracked memory (system.metrics), MiB."""
    try:
        rows = run_query(
            pipeline.settings,
            "SELECT value FROM system.metrics WHERE metric = 'MemoryTracking'",
        ).rows
    except Exception:  # a diagnostic only: never fail the measure for it
        return None
    return float(rows[0][0]) / 1024 / 1024 if rows else None


def measure(env: BenchEnv, done: Mapping[str, Section]) -> Section:
    sizes = env.sizes
    first, last = sizes.memory_checkpoints
    section = Section("g", TITLES["g"])
    settings = env.settings("memory")
    # (stored, seconds, peak RSS, current RSS)
    readings: list[tuple[int, float, dict[str, float], dict[str, float]]] = []
    tracked: list[float | None] = []  # ClickHouse MemoryTracking in the store, MiB
    ended_by_budget = False
    with Pipeline(env, settings, "g-memory") as pipeline:
        env.ui.step("g. memory: starting store and worker")
        pipeline.start_store()
        t0 = pipeline.start_worker()
        budget_end = max(env.deadline - sizes.reserve_s, time.monotonic() + sizes.memory_min_s)
        with EventProducer(settings) as producer:
            feeder = Feeder(env, producer, last)
            feeder.start()
            try:
                stored = 0
                for checkpoint in (first, last):
                    while stored < checkpoint:
                        if feeder.error is not None:
                            raise feeder.error
                        if time.monotonic() > budget_end:
                            ended_by_budget = True
                            break
                        pipeline.check()
                        time.sleep(0.25)
                        stored = pipeline.count()
                        feeder.allowed = stored + WINDOW
                        env.ui.step(f"g. memory: {stored:,} of {last:,} events stored")
                    readings.append(
                        (
                            stored,
                            time.monotonic() - t0,
                            pipeline.rss_mib(),
                            pipeline.rss_mib("VmRSS"),
                        )
                    )
                    tracked.append(clickhouse_memory_mib(pipeline))
                    env.ui.advance()
                    if ended_by_budget:
                        break
            finally:
                feeder.stopping.set()
                feeder.join(timeout=120)
    for n, (stored, seconds, peak, current) in enumerate(readings):
        tag = "" if stored >= (first, last)[n] else " (time budget ended)"
        for proc in ("worker", "store"):
            section.add(
                f"{proc}_{n}",
                Figure(f"{proc} peak RSS after {stored:,} events{tag}", peak.get(proc), "MiB"),
            )
            section.add(
                f"{proc}_now_{n}",
                Figure(f"{proc} RSS at that moment", current.get(proc), "MiB"),
            )
        if tracked[n] is not None:
            section.add(
                f"tracked_{n}",
                Figure("ClickHouse MemoryTracking in the store at that moment", tracked[n], "MiB"),
            )
        section.add(
            f"rate_{n}",
            Figure(
                f"full-path rate over the first {stored:,} events", stored / seconds, "events/s"
            ),
        )
    if len(readings) == 2:
        a, b = readings[0][0], readings[1][0]
        for proc in ("worker", "store"):
            section.ratio(
                f"{proc} peak RSS, after {b:,} / after {a:,} events",
                readings[1][2].get(proc),
                readings[0][2].get(proc),
                key=proc if b >= last else None,
            )
    if ended_by_budget:
        section.notes.append(
            f"the run's time budget ended before {last:,} events were stored; "
            "the last reading is at the count shown"
        )
    section.notes.append(
        f"batched messages of {sizes.batch}; the event set replayed with fresh ids each round; "
        "peak RSS is VmHWM in /proc/<pid>/status (peak since the process started), RSS at that "
        "moment is VmRSS; ClickHouse's own tracked memory is system.metrics MemoryTracking in "
        "the store's embedded engine"
    )
    return section
