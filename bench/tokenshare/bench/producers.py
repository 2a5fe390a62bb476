"""d. Producers: kafka-python through EventProducer, single events and batches.

Each run fills a fresh events topic that later measures consume (the worker's
run r reads producer run r's topic), so the topics are loaded only once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from tokenshare.bench.config import PROFILED_RUN, TITLES
from tokenshare.bench.cpu import RunCost
from tokenshare.bench.env import BenchEnv, Kind
from tokenshare.bench.report import Section, cost_figures
from tokenshare.bench.sampling import Sampler


def measure(env: BenchEnv, done: Mapping[str, Section]) -> Section:
    section = Section("d", TITLES["d"])
    sizes = env.sizes
    costs: dict[str, list[RunCost]] = {"single": [], "batched": []}
    for run in range(1, sizes.runs + 1):
        for kind in ("single", "batched"):
            env.ui.step(f"d. producer, {kind}, run {run}/{sizes.runs}")
            load = env.topic(kind, run)
            costs[kind].append(load.cost)
            env.ui.advance()
    kinds: tuple[Kind, ...] = ("single", "batched")
    for kind in kinds:
        # One more load, not timed, under py-spy (this process is the producer); the
        # worker's profiled run reads the topic it fills.
        env.ui.step(f"d. producer, {kind}, profiled")
        with Sampler({"producer": os.getpid()}, env.home / "profiles" / f"d-{kind}") as sampler:
            env.topic(kind, PROFILED_RUN)
        section.text += f"producer, {kind}\n{sampler.text()}\n\n"
        env.ui.advance()
    cost_figures(
        section,
        "single",
        f"EventProducer.send, one event per message ({sizes.single_events:,} events)",
        costs["single"],
    )
    cost_figures(
        section,
        "batched",
        f"EventProducer.send_batch, {sizes.batch} per message ({sizes.events:,} events)",
        costs["batched"],
    )
    section.ratio("batched / single", section.value("batched"), section.value("single"))
    section.notes.append(
        "acks=all, idempotent, every event validated against the contract before sending; "
        "timed from the first send to the flush that saw every ack; CPU is the bench "
        "process's over the same span"
    )
    return section
