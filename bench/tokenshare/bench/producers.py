"""d. Producers: kafka-python through EventProducer, single events and batches.

Each run fills a fresh events topic that later measures consume (the worker's
run r reads producer run r's topic), so the topics are loaded only once.
"""

from __future__ import annotations

from collections.abc import Mapping

from tokenshare.bench.config import TITLES
from tokenshare.bench.env import BenchEnv
from tokenshare.bench.report import Section, rate_figure


def measure(env: BenchEnv, done: Mapping[str, Section]) -> Section:
    section = Section("d", TITLES["d"])
    sizes = env.sizes
    rates: dict[str, list[float]] = {"single": [], "batched": []}
    for run in range(1, sizes.runs + 1):
        for kind in ("single", "batched"):
            env.ui.step(f"d. producer, {kind}, run {run}/{sizes.runs}")
            load = env.topic(kind, run)
            rates[kind].append(load.rate)
            env.ui.advance()
    section.add(
        "single",
        rate_figure(
            f"EventProducer.send, one event per message ({sizes.single_events:,} events)",
            rates["single"],
        ),
    )
    section.add(
        "batched",
        rate_figure(
            f"EventProducer.send_batch, {sizes.batch} per message ({sizes.events:,} events)",
            rates["batched"],
        ),
    )
    section.ratio("batched / single", section.value("batched"), section.value("single"))
    section.notes.append(
        "acks=all, idempotent, every event validated against the contract before sending; "
        "timed from the first send to the flush that saw every ack"
    )
    return section
