"""shares. The share stage's cost per tick, at 1x and at 4x the stored events.

A tick is what the share stage does for each change notice: read the day sums
its rules use (``load_day_sums``, from the rollups) and evaluate every rule
(``ShareEngine.tick``), here with the shipped rules and all their keys. Its cost
should follow the keys and days, not the events: the rollups hold one row per
(day, dimension, value, segment) whatever the traffic. So the same event set
is stored once (1x) in one database, and four times (4x) in another, the
copies under other event ids and source topics (same models, labels and days:
the same keys). Ticks then alternate between the two, and their CPU seconds
are compared. The engine is the embedded chDB at the sink measure's path (one
engine per process).
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
VOLUMES = (1, COPIES)
ROLLUPS = ("segment_rollup", "daily_rollup")  # what load_day_sums and progress read
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


def tick_seconds(query: Any, rules: RulesConfig, database: str) -> Tick:
    """Times one tick."""
    started, cpu = time.perf_counter(), time.process_time()
    sums = load_day_sums(
        query,
        database,
        rules.idle_partition_seconds,
        dimensions=rules.dimensions_for(),
        segments=rules.segments_for(),
    )
    loaded = time.perf_counter() - started
    result = ShareEngine(rules).tick(sums, now=NOW)
    wall = time.perf_counter() - started
    return Tick(wall, time.process_time() - cpu, loaded, len(result.alerts))


def ticks_in_turn(
    query: Any, rules: RulesConfig, databases: Mapping[int, str]
) -> dict[int, list[Tick]]:
    """TICKS ticks of each volume, taken in turn: a machine slowing down or speeding
    up meanwhile weighs on both alike (one volume after the other, drift alone gave
    ratios from 0.8x to 1.8x)."""
    runs: dict[int, list[Tick]] = {volume: [] for volume in databases}
    for _ in range(TICKS):
        for volume, database in databases.items():
            runs[volume].append(tick_seconds(query, rules, database))
    return runs


def rollup_parts(query: Any, database: str) -> tuple[int, int]:
    """(active parts, rows) of the rollups the ticks read."""
    tables = ", ".join(f"'{t}'" for t in ROLLUPS)
    parts, rows = query(
        "SELECT count(), sum(rows) FROM system.parts "
        f"WHERE database = '{database}' AND active AND table IN ({tables})"
    )[0]
    return int(parts), int(rows)


def measure(env: BenchEnv, done: Mapping[str, Section]) -> Section:
    section = Section("shares", TITLES["shares"])
    rules = load_rules()
    env.ui.step("shares: building rows")
    batches = row_batches(env)
    events = sum(len(b) for b in batches)
    client = connect(f"chdb://{env.home / 'sink-chdb'}")
    try:

        def query(sql: str) -> list[list[Any]]:
            return [list(row) for row in client.query(sql).result_rows]

        databases: dict[int, str] = {}
        for volume in VOLUMES:
            env.ui.step(f"shares: storing {volume}x the event set")
            database = f"{DATABASE}_{volume}x"
            migrate(client, database)
            writer = RawEventWriter(client, database, sole_writer=True)
            writer.load_marks()
            for k in range(volume):
                writer.write([copy_of(b, k) for b in batches] if k else batches)
            stored = query(f"SELECT count() FROM {database}.raw_events")[0][0]
            if stored != volume * events:
                raise RuntimeError(f"stored {stored:,} rows of {volume * events:,}")
            databases[volume] = database
            tick_seconds(query, rules, database)  # warm caches
        env.ui.step(f"shares: {TICKS} ticks at each volume, taken in turn")
        runs = ticks_in_turn(query, rules, databases)
        parts = {volume: rollup_parts(query, databases[volume]) for volume in VOLUMES}
        env.ui.step("shares: the rollups merged (OPTIMIZE FINAL), ticks again")
        for database in databases.values():
            for table in ROLLUPS:
                client.command(f"OPTIMIZE TABLE {database}.{table} FINAL")
        merged = ticks_in_turn(query, rules, databases)
        for volume in VOLUMES:
            ticks = runs[volume]
            cpus = [tick.cpu for tick in ticks]
            section.add(
                f"tick_{volume}x_cpu",
                Figure(
                    f"one tick at {volume}x ({volume * events:,} stored events), CPU",
                    median(cpus),
                    "CPU s",
                    cpus,
                ),
            )
            walls = [tick.wall for tick in ticks]
            section.add(
                f"tick_{volume}x",
                Figure(f"one tick at {volume}x, wall clock", median(walls), "s", walls),
            )
            section.add(
                f"tick_{volume}x_load",
                Figure(
                    f"of which loading the day sums (SQL on the rollups) at {volume}x",
                    median([tick.load for tick in ticks]),
                    "s",
                ),
            )
            env.ui.advance()
        for volume in VOLUMES:
            section.add(
                f"tick_{volume}x_merged_cpu",
                Figure(
                    f"one tick at {volume}x once the rollups are merged, CPU",
                    median([tick.cpu for tick in merged[volume]]),
                    "CPU s",
                    [tick.cpu for tick in merged[volume]],
                ),
            )
    finally:
        client.close()
    one, many = section.value("tick_1x_cpu"), section.value(f"tick_{COPIES}x_cpu")
    section.add(
        "tick_ratio",
        Figure(f"tick CPU at {COPIES}x / at 1x", many / one if one and many else None, "x"),
    )
    one, many = section.value("tick_1x_merged_cpu"), section.value(f"tick_{COPIES}x_merged_cpu")
    section.add(
        "tick_ratio_merged",
        Figure(
            f"tick CPU at {COPIES}x / at 1x, the rollups merged",
            many / one if one and many else None,
            "x",
        ),
    )
    alerts = {volume: runs[volume][-1].alerts for volume in VOLUMES}
    section.notes.append(
        f"the shipped rules, every key; {alerts[1]} alerts at 1x and {alerts[COPIES]} at "
        f"{COPIES}x (the copies move no share, so the same findings are expected)"
    )
    section.notes.append(
        "each volume in its own database; the ticks alternate between them and the "
        "ratio is of CPU seconds (this process's, the embedded engine's threads "
        "included), which a shared machine's stolen time does not inflate"
    )
    section.notes.append(
        "as stored, the rollups hold "
        + " and ".join(f"{rows:,} rows in {n} parts at {v}x" for v, (n, rows) in parts.items())
        + ": ClickHouse leaves a month's few big parts unmerged, so the 4x ticks read "
        "their rows four times over; merged (what background merges reach once a "
        "partition has enough parts, forced here), they hold the same rows at both volumes"
    )
    return section
