"""floor. What storing these rows costs on this machine: consume + insert_arrow.

Two floors, each its own process (`python -m tokenshare.bench.floor`): into
tokenshare's raw_events (projection and daily_rollup view included), and into
a plain MergeTree with the same written columns. No validation and no guards,
so tokenshare's full path can only approach them. Timed, costed and checked
like the peers (`tokenshare.bench.jobs`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from tokenshare.bench.config import TITLES
from tokenshare.bench.cpu import RunCost
from tokenshare.bench.env import BenchEnv
from tokenshare.bench.jobs import JobSpec, timed_job
from tokenshare.bench.peers import KINDS
from tokenshare.bench.report import Section, cost_figures

TABLES = {
    "raw_events": "consume + insert_arrow into raw_events (projection + daily_rollup view)",
    "plain": "consume + insert_arrow into a plain MergeTree",
}


def measure(env: BenchEnv, done: Mapping[str, Section]) -> Section:
    section = Section("floor", TITLES["floor"])
    sizes = env.sizes
    for table, what in TABLES.items():
        spec = JobSpec(
            f"floor-{table}", sys.executable, "tokenshare.bench.floor", ("--table", table)
        )
        for kind in KINDS:
            costs: list[RunCost] = []
            for run in range(1, sizes.runs + 1):
                env.ui.step(f"floor. {table}, {kind} messages, run {run}/{sizes.runs}")
                costs.append(timed_job(env, spec, env.topic(kind, run), sizes.sink_flush_rows))
                env.ui.advance()
            events, per = sizes.of_kind(kind)
            cost_figures(section, f"{table}_{kind}", f"{what}; {events:,} events, {per}", costs)
    for kind in KINDS:
        section.ratio(
            f"raw_events / plain MergeTree, {kind}",
            section.value(f"raw_events_{kind}"),
            section.value(f"plain_{kind}"),
        )
    section.notes.append(
        "aiokafka getmany, orjson.loads, catalog columns from a cached lookup per model, one "
        f"Arrow table per {sizes.sink_flush_rows:,} rows (or when the topic is drained), "
        "insert_arrow into an embedded chDB, then a commit; one process each"
    )
    return section
