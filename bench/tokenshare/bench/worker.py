"""c. tokenshare's worker, full path: validate, enrich, rows topic, store into ClickHouse.

Per run: a fresh store (own ClickHouse data path) and a fresh worker on an
events topic the producer filled beforehand. The clock starts when the
worker's ingest consumer group has its partitions (it fetches at once). The
worker alone is done when the ingest group has committed every message; the
full path when, after that, the store group has committed every message of
the rows topic (the store commits only what it stored). Nothing queries the
store while it works; its raw_events count is checked once, at the end, and
must equal the events sent. CPU: user + system seconds of the worker's
process tree (worker alone), and of the worker's and the store's (full path),
from the clock start to each end.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from tokenshare.bench.config import PROFILED_RUN, TITLES
from tokenshare.bench.cpu import CpuMeter, RunCost
from tokenshare.bench.env import BenchEnv, Kind
from tokenshare.bench.peers import PEER_NAMES
from tokenshare.bench.pipeline import Pipeline, PipelineError
from tokenshare.bench.report import Section, cost_figures
from tokenshare.bench.sampling import Sampler


@dataclass(frozen=True, slots=True)
class Run:
    alone: RunCost  # the worker until its ingest group has committed everything
    full: RunCost  # worker and store until the store group has
    profile: str = ""  # py-spy's tables of the worker and the store, when sampled


def timed_run(env: BenchEnv, kind: Kind, run: int, profile_to: Path | None = None) -> Run:
    """One run of `kind` from topic `run`; sampled by py-spy when `profile_to` is given."""
    load = env.topic(kind, run)
    with Pipeline(env, load.settings, f"c-{kind}-{run}") as pipeline:
        pipeline.start_store()
        end = pipeline.end_offsets()
        t0 = pipeline.start_worker()
        meter = CpuMeter(pipeline.pids.values())
        meter.start()
        pids = pipeline.pids
        sampler = Sampler(pids, profile_to) if profile_to else None
        with sampler or nullcontext():
            deadline = t0 + max(300.0, load.events / 1_000)
            watch, settings = pipeline.watch, pipeline.settings
            t_alone = watch.wait_committed(
                settings.ingest_group, settings.events_topic, end, deadline, pipeline.check
            )
            cpu_alone = meter.read()[pids["worker"]]
            rows_end = pipeline.rows_end()
            t_full = watch.wait_committed(
                settings.store_group, settings.rows_topic, rows_end, deadline, pipeline.check
            )
            cpu_full = sum(meter.read().values())
        stored = pipeline.count()
    if stored != load.events:
        raise PipelineError(f"{kind} run {run}: stored {stored:,} of {load.events:,} events")
    return Run(
        RunCost(load.events, t_alone - t0, cpu_alone),
        RunCost(load.events, t_full - t0, cpu_full),
        sampler.text() if sampler else "",
    )


def measure(env: BenchEnv, done: Mapping[str, Section]) -> Section:
    section = Section("c", TITLES["c"])
    sizes = env.sizes
    for kind in ("batched", "single"):
        alone_runs: list[RunCost] = []
        full_runs: list[RunCost] = []
        for run in range(1, sizes.runs + 1):
            env.ui.step(f"c. worker + store, {kind} messages, run {run}/{sizes.runs}")
            timed = timed_run(env, kind, run)
            alone_runs.append(timed.alone)
            full_runs.append(timed.full)
            env.ui.advance()
        # One more run, not timed, under py-spy: where the worker's and the store's
        # time goes (what the missed targets are explained by).
        env.ui.step(f"c. worker + store, {kind} messages, profiled")
        sampled = timed_run(env, kind, PROFILED_RUN, env.home / "profiles" / f"c-{kind}")
        section.text += f"full path, {kind}, {sampled.full.events:,} events\n{sampled.profile}\n\n"
        env.ui.advance()
        events, per = sizes.of_kind(kind)
        cost_figures(
            section,
            f"{kind}_full",
            f"full path, {per} ({events:,} events): stored and committed by the store",
            full_runs,
        )
        cost_figures(
            section, f"{kind}_alone", f"worker alone, {per}: ingest group lag 0", alone_runs
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
    floors = done.get("floor")
    if floors is not None:
        section.ratio(
            "full path batched / floor (consume + insert_arrow into raw_events)",
            section.value("batched_full"),
            floors.value("raw_events_batched"),
        )
        section.ratio(
            "full path single / floor (consume + insert_arrow into raw_events)",
            section.value("single_full"),
            floors.value("raw_events_single"),
        )
    if peers is not None:
        for kind in ("batched", "single"):
            for peer, name in PEER_NAMES.items():
                section.ratio(
                    f"full path {kind} / {name} {kind}",
                    section.value(f"{kind}_full"),
                    peers.value(f"{peer}_{kind}"),
                )
        section.ratio(
            "CPU per stored event, full path batched / arroyo batched",
            section.value("batched_full_cpu_m"),
            peers.value("arroyo_batched_cpu_m"),
        )
    section.ratio(
        "full path batched / single",
        section.value("batched_full"),
        section.value("single_full"),
    )
    section.notes.append(
        "each run: its own topics, store and ClickHouse data path; store and worker are "
        "`tokenshare store` and `tokenshare worker` started with settings in the environment; "
        "clock from the ingest group's assignment (start-up is not timed)"
    )
    return section
