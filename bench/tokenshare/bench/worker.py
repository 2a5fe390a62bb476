"""c. tokenshare's worker, full path: validate, enrich, rows topic, store into ClickHouse.

Per run: a fresh store (own ClickHouse data path) and a fresh worker on an
events topic the producer filled beforehand. The clock starts when the
worker's ingest consumer group has its partitions (it fetches at once), and
stops when the ingest group has committed every message (the worker alone)
and when the store's raw_events count equals the events (the full path).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from tokenshare.bench.config import TITLES
from tokenshare.bench.env import BenchEnv, Kind
from tokenshare.bench.pipeline import Pipeline, PipelineError
from tokenshare.bench.report import Section, rate_figure


def timed_run(env: BenchEnv, kind: Kind, run: int) -> tuple[float, float]:
    """(worker alone, full path) events/s of one run."""
    load = env.topic(kind, run)
    with Pipeline(env, load.settings, f"c-{kind}-{run}") as pipeline:
        pipeline.start_store()
        end = pipeline.end_offsets()
        t0 = pipeline.start_worker()
        alone: float | None = None
        full: float | None = None
        deadline = t0 + max(300.0, load.events / 1_000)
        while alone is None or full is None:
            now = time.monotonic()
            if now > deadline:
                raise PipelineError(
                    f"{kind} run {run}: not done after {now - t0:.0f}s "
                    f"(committed {pipeline.committed():,}/{end:,} messages, "
                    f"stored {pipeline.count():,}/{load.events:,} events)"
                )
            pipeline.check()
            if alone is None and pipeline.committed() >= end:
                alone = time.monotonic() - t0
            if full is None and pipeline.count() >= load.events:
                full = time.monotonic() - t0
            time.sleep(0.05)
    return load.events / alone, load.events / full


def measure(env: BenchEnv, done: Mapping[str, Section]) -> Section:
    section = Section("c", TITLES["c"])
    sizes = env.sizes
    for kind in ("batched", "single"):
        alone_runs: list[float] = []
        full_runs: list[float] = []
        for run in range(1, sizes.runs + 1):
            env.ui.step(f"c. worker + store, {kind} messages, run {run}/{sizes.runs}")
            alone, full = timed_run(env, kind, run)
            alone_runs.append(alone)
            full_runs.append(full)
            env.ui.advance()
        events = sizes.events if kind == "batched" else sizes.single_events
        per = f"{sizes.batch} events per message" if kind == "batched" else "one event per message"
        section.add(
            f"{kind}_full",
            rate_figure(f"full path, {per} ({events:,} events): stored in ClickHouse", full_runs),
        )
        section.add(
            f"{kind}_alone",
            rate_figure(f"worker alone, {per}: ingest group lag 0", alone_runs),
        )
    limit, peers = done.get("a"), done.get("b")
    if limit is not None:
        raw = limit.value("batched")
        section.ratio("full path batched / raw limit batched", section.value("batched_full"), raw)
        section.ratio(
            "worker alone batched / raw limit batched", section.value("batched_alone"), raw
        )
        raw_single = limit.value("single")
        section.ratio(
            "full path single / raw limit single", section.value("single_full"), raw_single
        )
    if peers is not None:
        plain, windowed = peers.value("plain"), peers.value("windowed")
        section.ratio("full path single / plain Faust agent", section.value("single_full"), plain)
        section.ratio(
            "worker alone single / plain Faust agent", section.value("single_alone"), plain
        )
        section.ratio(
            "full path single / idiomatic Faust windowed app",
            section.value("single_full"),
            windowed,
        )
        section.ratio(
            "full path batched / idiomatic Faust windowed app",
            section.value("batched_full"),
            windowed,
        )
    section.ratio(
        "full path batched / single",
        section.value("batched_full"),
        section.value("single_full"),
    )
    section.notes.append(
        "each run: its own topics, store and ClickHouse data path; store and worker are "
        "`tokenshare store` and `tokenshare worker` started with settings in the environment; "
        "clock from the ingest group's assignment (Faust's own start-up is not timed)"
    )
    return section
