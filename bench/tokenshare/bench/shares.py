"""shares. The share stage's cost per tick, at 1x and at 4x the stored events.

A tick is what the share stage does for each change notice: read the day sums
its rules use (``load_day_sums``, from the rollups) and evaluate every rule
(``ShareEngine.tick``), here with the shipped rules and all their keys. Its cost
should follow the keys and days, not the events: the rollups hold one row per
(day, dimension, value, segment) whatever the traffic. So the same event set
is stored once (1x), ticks are timed, then stored three more times under other
event ids and source topics (same models, labels and days: the same keys), and
ticks are timed again (4x). The engine is the embedded chDB at the sink
measure's path (one engine per process), in a database of its own.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from tokenshare.bench.config import TITLES
from tokenshare.bench.env import BenchEnv
from tokenshare.bench.report import Figure, Section, median
from tokenshare.bench.sink import row_batches
from tokenshare.schema.rows import RowBatch
from tokenshare.sinks.clickhouse import connect, migrate
from tokenshare.sinks.raw_events import RawEventWriter
from tokenshare.streams.shares.config import RulesConfig, load_rules
from tokenshare.streams.shares.engine import ShareEngine, load_day_sums

TICKS = 5  # timed ticks per volume; the figure is their median
COPIES = 4  # the second volume, in copies of the event set
DATABASE = "bench_shares"
NOW = datetime(2026, 6, 1, tzinfo=UTC)  # fixed, so every tick evaluates the same windows


def copy_of(batch: RowBatch, k: int) -> RowBatch:
    """The same rows under other event ids and another source topic (not replays)."""
    columns = dict(batch.columns)
    columns["event_id"] = [f"{event_id}.{k}" for event_id in columns["event_id"]]
    return RowBatch(f"{batch.src_topic}.copy{k}", batch.src_partition, columns)


class Tick(NamedTuple):
    """One tick of the share stage: the load (SQL on the rollups) and the evaluation
    (Python) are split so that a miss says which half grew with the events."""

    wall: float  #: seconds
    cpu: float  #: CPU seconds
    load: float  #: seconds of `wall` spent loading the day sums
    alerts: int


def tick_seconds(query: Any, rules: RulesConfig) -> Tick:
    """Times one tick."""
    started, cpu = time.perf_counter(), time.process_time()
    sums = load_day_sums(
        query,
        DATABASE,
        rules.idle_partition_seconds,
        dimensions=rules.dimensions_for(),
        segments=rules.segments_for(),
    )
    loaded = time.perf_counter() - started
    result = ShareEngine(rules).tick(sums, now=NOW)
    wall = time.perf_counter() - started
    return Tick(wall, time.process_time() - cpu, loaded, len(result.alerts))


def measure(env: BenchEnv, done: Mapping[str, Section]) -> Section:
    section = Section("shares", TITLES["shares"])
    rules = load_rules()
    env.ui.step("shares: building rows")
    batches = row_batches(env)
    events = sum(len(b) for b in batches)
    client = connect(f"chdb://{env.home / 'sink-chdb'}")
    try:
        migrate(client, DATABASE)
        writer = RawEventWriter(client, DATABASE, sole_writer=True)
        writer.load_marks()

        def query(sql: str) -> list[list[Any]]:
            return [list(row) for row in client.query(sql).result_rows]

        walls: dict[int, list[float]] = {}
        alerts: dict[int, int] = {}
        written = 0  # copies of the event set stored so far (copy 0: the set itself)
        for volume in (1, COPIES):
            env.ui.step(f"shares: storing {volume}x the event set")
            for k in range(written, volume):
                writer.write([copy_of(b, k) for b in batches] if k else batches)
            written = volume
            stored = query(f"SELECT count() FROM {DATABASE}.raw_events")[0][0]
            if stored != volume * events:
                raise RuntimeError(f"stored {stored:,} rows of {volume * events:,}")
            env.ui.step(f"shares: {TICKS} ticks at {volume}x")
            tick_seconds(query, rules)  # warm caches
            runs = [tick_seconds(query, rules) for _ in range(TICKS)]
            walls[volume] = [tick.wall for tick in runs]
            alerts[volume] = runs[-1].alerts
            section.add(
                f"tick_{volume}x",
                Figure(
                    f"one tick at {volume}x ({volume * events:,} stored events), wall clock",
                    median(walls[volume]),
                    "s",
                    walls[volume],
                ),
            )
            section.add(
                f"tick_{volume}x_cpu",
                Figure(f"one tick at {volume}x, CPU", median([tick.cpu for tick in runs]), "CPU s"),
            )
            section.add(
                f"tick_{volume}x_load",
                Figure(
                    f"of which loading the day sums (SQL on the rollups) at {volume}x",
                    median([tick.load for tick in runs]),
                    "s",
                ),
            )
            env.ui.advance()
    finally:
        client.close()
    one, many = section.value("tick_1x"), section.value(f"tick_{COPIES}x")
    section.add(
        "tick_ratio",
        Figure(f"tick at {COPIES}x / tick at 1x", many / one if one and many else None, "x"),
    )
    section.notes.append(
        f"the shipped rules, every key; {alerts[1]} alerts at 1x and {alerts[COPIES]} at "
        f"{COPIES}x (the copies move no share, so the same findings are expected)"
    )
    return section
