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

from tokenshare.bench import freshness, hotpath, limit, memory, peers, producers, sink, worker
from tokenshare.bench.config import TITLES, Sizes
from tokenshare.bench.env import BenchEnv
from tokenshare.bench.machine import describe, load_average, now
from tokenshare.bench.report import (
    Section,
    Target,
    section_markdown,
    section_table,
    targets_markdown,
    targets_table,
)
from tokenshare.bench.ui import Ui

Measure = Callable[[BenchEnv, Mapping[str, Section]], Section]

MEASURES: dict[str, Measure] = {
    "a": limit.measure,
    "b": peers.measure,
    "c": worker.measure,
    "d": producers.measure,
    "e": sink.measure,
    "f": freshness.measure,
    "g": memory.measure,
    "profile": hotpath.measure,
}

#: RESULTS.md next to this module (the repository's bench/ folder).
DEFAULT_OUT = Path(__file__).resolve().parent / "RESULTS.md"


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
    return {"f": 1, "g": 2, "profile": 1}.get(key, 2 * sizes.runs)


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
    def v(key: str, figure: str) -> float | None:
        return _value(sections, key, figure)

    rss = sections["g"].ratio_values if "g" in sections else {}
    p99s = [p for p in (v("f", "raw_p99"), v("f", "rollup_p99")) if p is not None]
    first, last = sizes.memory_checkpoints
    return [
        Target("worker batched, full path", v("c", "batched_full"), ">=", 150_000, "events/s"),
        Target("worker batched, worker alone", v("c", "batched_alone"), ">=", 150_000, "events/s"),
        Target(
            "worker batched full path / raw limit",
            _div(v("c", "batched_full"), v("a", "batched")),
            ">=",
            0.5,
            "x",
        ),
        Target("worker single-event, full path", v("c", "single_full"), ">=", 25_000, "events/s"),
        Target(
            "worker single-event full path / plain Faust agent",
            _div(v("c", "single_full"), v("b", "plain")),
            ">=",
            4,
            "x",
        ),
        Target(
            "worker single-event full path / idiomatic Faust windowed app",
            _div(v("c", "single_full"), v("b", "windowed")),
            ">=",
            100,
            "x",
        ),
        Target("producer, single events", v("d", "single"), ">=", 20_000, "events/s"),
        Target(
            f"producer, batched ({sizes.batch} per message)",
            v("d", "batched"),
            ">=",
            200_000,
            "events/s",
        ),
        Target(
            f"freshness p99 at {sizes.fresh_rate:,} events/s (worse of raw_events, daily_rollup)",
            max(p99s) if p99s else None,
            "<",
            2.0,
            "s",
        ),
        Target(
            f"worker peak RSS after {last:,} / after {first:,} events",
            rss.get("worker"),
            "<=",
            1.2,
            "x",
        ),
        Target(
            f"store peak RSS after {last:,} / after {first:,} events",
            rss.get("store"),
            "<=",
            1.2,
            "x",
        ),
    ]


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
    ]
    parts += [section_markdown(section) for section in sections.values()]
    return "\n".join(parts)
