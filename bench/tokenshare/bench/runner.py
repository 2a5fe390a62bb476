"""One benchmark run: the broker, every selected measure, targets, RESULTS.md."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.console import Console

from tokenshare.bench import (
    floors,
    freshness,
    hotpath,
    limit,
    memory,
    peers,
    producers,
    shares,
    sink,
    worker,
)
from tokenshare.bench.config import TITLES, Sizes
from tokenshare.bench.env import BenchEnv
from tokenshare.bench.machine import describe, load_average, now
from tokenshare.bench.report import (
    Op,
    Section,
    Target,
    fmt,
    section_markdown,
    section_table,
    targets_markdown,
    targets_table,
)
from tokenshare.bench.ui import Ui

Measure = Callable[[BenchEnv, Mapping[str, Section]], Section]

MEASURES: dict[str, Measure] = {
    "a": limit.measure,
    "floor": floors.measure,
    "b": peers.measure,
    "c": worker.measure,
    "d": producers.measure,
    "e": sink.measure,
    "shares": shares.measure,
    "f": freshness.measure,
    "g": memory.measure,
    "profile": hotpath.measure,
}

#: RESULTS.md in the repository's bench/ folder (this module is bench/tokenshare/bench/).
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "RESULTS.md"


@dataclass(slots=True)
class BenchRun:
    sections: dict[str, Section]
    targets: list[Target]
    markdown: str
    seconds: float

    @property
    def failed(self) -> list[str]:
        return [key for key, s in self.sections.items() if s.error]


def steps(key: str, sizes: Sizes) -> int:
    jobs = {"floor": 2 * 2, "b": len(peers.PEERS) * 2}  # tables or peers, times two kinds
    profiled = {"c": 2, "d": 2}  # one untimed run of each kind under py-spy
    fixed = {"f": 1, "g": 2, "shares": 2, "profile": 1}
    return fixed.get(key, jobs.get(key, 2) * sizes.runs + profiled.get(key, 0))


def run_bench(
    *, sizes: Sizes, only: list[str], out: Path | None, command: str, console: Console
) -> BenchRun:
    for noisy in ("aiokafka", "kafka"):  # retries while groups form; the bench reports failures
        logging.getLogger(noisy).setLevel(logging.ERROR)
    started_at, load_before = now(), load_average()
    started = time.monotonic()
    ui = Ui(console)
    sections: dict[str, Section] = {}
    with BenchEnv(sizes, ui) as env:
        console.print(f"[green]Kafka ready[/] at {env.kafka.bootstrap} (temporary home {env.home})")
        ui.start(sum(steps(key, sizes) for key in only))
        try:
            for key in only:
                t0 = time.monotonic()
                try:
                    section = MEASURES[key](env, sections)
                except Exception as exc:
                    section = Section(key, TITLES[key], error=f"{type(exc).__name__}: {exc}")
                    ui.show(f"[red]{TITLES[key]} failed[/]\n{traceback.format_exc()}")
                section.seconds = time.monotonic() - t0
                sections[key] = section
                ui.show(section_table(section))
        finally:
            ui.stop()
    targets = build_targets(sections, sizes)
    console.print(targets_table(targets))
    seconds = time.monotonic() - started
    markdown = render(sections, targets, sizes, command, started_at, load_before, seconds)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(markdown)
        console.print(f"results written to {out}")
    console.print(f"benchmark finished in {seconds / 60:.1f} min")
    return BenchRun(sections, targets, markdown, seconds)


def _value(sections: Mapping[str, Section], key: str, figure: str) -> float | None:
    section = sections.get(key)
    return section.value(figure) if section else None


def _div(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


def build_targets(sections: Mapping[str, Section], sizes: Sizes) -> list[Target]:
    """Issue 14's targets, every one from figures of this run."""

    def v(key: str, figure: str) -> float | None:
        return _value(sections, key, figure)

    def ratio(
        label: str, num: tuple[str, str], den: tuple[str, str], op: Op, x: float, why: str
    ) -> Target:
        return Target(label, _div(v(*num), v(*den)), op, x, "x", why)

    rss = sections["g"].ratio_values if "g" in sections else {}
    p99s = [p for p in (v("f", "raw_p99"), v("f", "rollup_p99")) if p is not None]
    first, last = sizes.memory_checkpoints
    full_b, full_s = ("c", "batched_full"), ("c", "single_full")
    # The py-spy tables that explain a miss (see each section's text).
    B, S = "c. full path, batched: worker and store", "c. full path, single: worker and store"
    return [
        ratio(
            "full path batched / floor (consume + insert_arrow into raw_events) batched",
            full_b, ("floor", "raw_events_batched"), ">=", 0.8, B,
        ),
        ratio("full path batched / arroyo batched", full_b, ("b", "arroyo_batched"), ">=", 1.5, B),
        ratio("full path single / arroyo single", full_s, ("b", "arroyo_single"), ">=", 2.5, S),
        ratio(
            "full path batched / Quix windowed batched",
            full_b, ("b", "quix_windowed_batched"), ">=", 4, B,
        ),
        ratio(
            "full path single / Quix windowed single",
            full_s, ("b", "quix_windowed_single"), ">=", 4, S,
        ),
        ratio(
            "CPU s per million stored events, full path batched / arroyo batched",
            ("c", "batched_full_cpu_m"), ("b", "arroyo_batched_cpu_m"), "<=", 1.0, B,
        ),
        ratio(
            "CPU s per million stored events, full path single / arroyo single",
            ("c", "single_full_cpu_m"), ("b", "arroyo_single_cpu_m"), "<=", 1.0, S,
        ),
        ratio(
            "worker alone batched / raw loop batched",
            ("c", "batched_alone"), ("a", "batched"), ">=", 0.5,
            "c. full path, batched: worker; and the worker's hot path (last section)",
        ),
        Target(
            "producer, single events", v("d", "single"), ">=", 20_000, "events/s",
            "d. producer, single",
        ),
        Target(
            f"producer, batched ({sizes.batch} per message)",
            v("d", "batched"),
            ">=",
            200_000,
            "events/s",
            "d. producer, batched",
        ),
        Target(
            "share stage: cost per tick at 4x the events / at 1x (same keys and days)",
            v("shares", "tick_ratio"),
            "<=",
            1.25,
            "x",
            "shares: each tick's CPU, its load (SQL on the rollups) beside its wall clock",
        ),
        Target(
            f"freshness p99 at {sizes.fresh_rate:,} events/s (worse of raw_events, daily_rollup)",
            max(p99s) if p99s else None,
            "<",
            2.0,
            "s",
            "c. full path, single: store",
        ),
        Target(
            f"worker peak RSS after {last:,} / after {first:,} events",
            rss.get("worker"),
            "<=",
            1.2,
            "x",
            "g. memory: RSS at each checkpoint",
        ),
        Target(
            f"store peak RSS after {last:,} / after {first:,} events",
            rss.get("store"),
            "<=",
            1.2,
            "x",
            "g. memory: RSS and ClickHouse's tracked memory at each checkpoint",
        ),
    ]  # fmt: skip


#: The comparison table: (pipeline, section, figure key prefix of batched and single runs).
COMPARED: tuple[tuple[str, str, str, str], ...] = (
    ("tokenshare worker + store (full path)", "c", "batched_full", "single_full"),
    ("tokenshare worker alone", "c", "batched_alone", "single_alone"),
    *(
        (f"{p.peer.label}: {p.what}", "b", f"{p.key}_batched", f"{p.key}_single")
        for p in peers.PEERS
    ),
    ("raw aiokafka + orjson + dict loop", "a", "batched", "single"),
    *(
        (f"floor: {what}", "floor", f"{table}_batched", f"{table}_single")
        for table, what in floors.TABLES.items()
    ),
    ("producer (EventProducer)", "d", "batched", "single"),
)


def comparison_markdown(sections: Mapping[str, Section], sizes: Sizes) -> str:
    """Every pipeline of the run side by side: rates and CPU per stored event."""
    lines = [
        "## Pipelines side by side",
        "",
        f"Medians of this run; batched: {sizes.batch} events per message. CPU: user + system "
        "seconds of the pipeline's own processes (the broker excluded).",
        "",
        "| pipeline | batched events/s | single events/s | CPU s per 200k, batched "
        "| CPU s per million, batched | CPU s per million, single |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, key, batched, single in COMPARED:
        if key not in sections:
            continue
        cells = [
            fmt(_value(sections, key, figure), unit, bare=True)
            for figure, unit in (
                (batched, "events/s"),
                (single, "events/s"),
                (f"{batched}_cpu", "CPU s"),
                (f"{batched}_cpu_m", "CPU s"),
                (f"{single}_cpu_m", "CPU s"),
            )
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


INTRO = """\
Written by `tokenshare bench` (`make bench`). The bench starts its own
single-node Kafka broker on free loopback ports in a temporary folder, loads
one simulated event set (the market simulator: realistic models, tokens and
labels) and measures everything in one run. Machines are noisy, and this one
may be running other work: read the **ratios** against the baselines measured
in the same run rather than the absolute times. Throughput figures are the
median of the runs listed next to them.
"""


def render(
    sections: Mapping[str, Section],
    targets: list[Target],
    sizes: Sizes,
    command: str,
    started_at: datetime,
    load_before: str,
    seconds: float,
) -> str:
    parts = [
        "# tokenshare benchmarks\n",
        INTRO,
        "## Machine and versions\n",
        describe(command, started_at, load_before),
        f"Whole run: {seconds / 60:.1f} min; {sizes.runs} run(s) per throughput figure; "
        f"event set of {sizes.events:,} events.\n",
        targets_markdown(targets),
        comparison_markdown(sections, sizes),
    ]
    parts += [section_markdown(section) for section in sections.values()]
    return "\n".join(parts)
