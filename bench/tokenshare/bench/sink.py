"""e. The ClickHouse sink alone, in an embedded chDB at a temporary path.

The same pre-built rows (the event set through `Enricher.process`, in
rows-topic chunks) are written two ways, in flushes of `sink_flush_rows`:
by the store's `RawEventWriter.write` (replay guards, event-id lookup,
insert token, raw_events with its projection and the daily_rollup view), and
by one column-oriented `clickhouse_connect` insert per flush into a plain
MergeTree table with the same columns, and, to tell the table's cost from the
writer's, by the same direct inserts into raw_events itself. This process opens the engine itself,
so the bench runs this measure after every other that queries a store.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from clickhouse_connect.driver.client import Client

from tokenshare.bench.config import TITLES
from tokenshare.bench.env import PARTITIONS, BenchEnv
from tokenshare.bench.peer_job import plain_table
from tokenshare.bench.report import Figure, Section, median
from tokenshare.schema.catalog import Catalog
from tokenshare.schema.rows import ROW_COLUMNS, RowBatch
from tokenshare.sinks.clickhouse import INSERT_SETTINGS, connect, migrate
from tokenshare.sinks.raw_events import RawEventWriter
from tokenshare.streams.batch import Enricher, SourceMessage
from tokenshare.streams.ingest import ROWS_PER_MESSAGE

TOPIC = "bench.events"


def row_batches(env: BenchEnv) -> list[RowBatch]:
    """The event set as the store receives it: one RowBatch per rows-topic message."""
    messages = env.events.batched(env.sizes.batch)
    source = [
        SourceMessage(TOPIC, i % PARTITIONS, i // PARTITIONS, value)
        for i, value in enumerate(messages)
    ]
    result = Enricher(Catalog.load(), 16 * 1024 * 1024).process(source)
    return [chunk for rows in result.rows for chunk in rows.chunks(ROWS_PER_MESSAGE)]


def flushes(batches: list[RowBatch], rows: int) -> list[list[RowBatch]]:
    groups: list[list[RowBatch]] = [[]]
    size = 0
    for batch in batches:
        if size >= rows:
            groups.append([])
            size = 0
        groups[-1].append(batch)
        size += len(batch)
    return groups


def insert_all(client: Client, table: str, flushes: list[list[list[Any]]]) -> float:
    """Seconds to insert every flush, one column-oriented insert each."""
    started = time.perf_counter()
    for data in flushes:
        client.insert(
            table,
            data,
            column_names=list(ROW_COLUMNS),
            column_oriented=True,
            settings=INSERT_SETTINGS,
        )
    return time.perf_counter() - started


def measure(env: BenchEnv, done: Mapping[str, Section]) -> Section:
    section = Section("e", TITLES["e"])
    sizes = env.sizes
    env.ui.step("e. sink: building rows")
    groups = flushes(row_batches(env), sizes.sink_flush_rows)
    rows = sum(len(b) for group in groups for b in group)
    columns: list[list[list[Any]]] = [
        [[v for b in group for v in b.columns[name]] for name in ROW_COLUMNS] for group in groups
    ]
    client = connect(f"chdb://{env.home / 'sink-chdb'}")
    writer_runs: list[float] = []
    table_runs: list[float] = []
    direct_runs: list[float] = []
    try:
        for run in range(1, sizes.runs + 1):
            env.ui.step(f"e. sink: RawEventWriter.write, run {run}/{sizes.runs}")
            db = f"sink_writer_{run}"
            migrate(client, db)
            writer = RawEventWriter(client, db)
            writer.load_marks()
            started = time.perf_counter()
            for group in groups:
                writer.write(group)
            writer_runs.append(rows / (time.perf_counter() - started))
            if writer.stats.inserted != rows:
                raise RuntimeError(f"the writer stored {writer.stats.inserted:,} of {rows:,} rows")
            env.ui.advance()
            env.ui.step(f"e. sink: direct clickhouse_connect inserts, run {run}/{sizes.runs}")
            table_db = f"sink_table_{run}"
            migrate(client, table_db)
            table_runs.append(rows / insert_all(client, f"{table_db}.raw_events", columns))
            table = plain_table(client, db, f"sink_direct_{run}")
            direct_runs.append(rows / insert_all(client, table, columns))
            env.ui.advance()
    finally:
        client.close()
    section.add(
        "writer",
        Figure(
            f"RawEventWriter.write into raw_events (+ daily_rollup view), {rows:,} rows",
            median(writer_runs),
            "rows/s",
            writer_runs,
        ),
    )
    section.add(
        "table",
        Figure(
            "clickhouse_connect insert into raw_events itself (projection + view), no guards",
            median(table_runs),
            "rows/s",
            table_runs,
        ),
    )
    section.add(
        "direct",
        Figure(
            "clickhouse_connect column-oriented insert into a plain MergeTree",
            median(direct_runs),
            "rows/s",
            direct_runs,
        ),
    )
    section.ratio(
        "RawEventWriter / direct insert (plain MergeTree)",
        section.value("writer"),
        section.value("direct"),
    )
    section.ratio(
        "RawEventWriter / insert into raw_events without guards",
        section.value("writer"),
        section.value("table"),
    )
    section.ratio(
        "raw_events (projection + view) / plain MergeTree, both direct",
        section.value("table"),
        section.value("direct"),
    )
    section.notes.append(
        f"flushes of {sizes.sink_flush_rows:,} rows as the store makes them; a fresh database "
        "per run; the direct insert's column lists are built before its clock starts"
    )
    return section
