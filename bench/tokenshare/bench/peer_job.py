"""The job every peer pipeline and floor of the bench does, in one place.

Peers (sentry-arroyo, Quix Streams) run in their own virtualenvs
(`tokenshare.bench.venvs`) with only the libraries this module needs, so it
imports no more of tokenshare than the contract, the enrichment and the
migrations: validation and enrichment are tokenshare's own
(`Enricher.process`), the table is tokenshare's own `raw_events` (projection
and `daily_rollup` view included, by tokenshare's migrations), written with
`insert_arrow` into an embedded chDB.

Each job process reads its topic in its own consumer group, commits after its
inserts, and on SIGTERM writes `{"stored": <count of its table>}` to
`--result`; the bench times it from outside by the group's committed offsets.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from clickhouse_connect.driver.client import Client

from tokenshare.schema.catalog import Catalog
from tokenshare.schema.rows import ROW_COLUMNS, ROW_SCHEMA
from tokenshare.sinks.clickhouse import INSERT_SETTINGS, connect, migrate
from tokenshare.streams.batch import Enricher, SourceMessage

DATABASE = "tokenshare"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
TS = pa.timestamp("ms", tz="UTC")


def parse_args(description: str | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--events-per-message", type=int, required=True)
    parser.add_argument("--flush-rows", type=int, default=50_000)
    parser.add_argument("--chdb", type=Path, required=True, help="the embedded ClickHouse path")
    parser.add_argument("--table", choices=("raw_events", "plain"), default="raw_events")
    parser.add_argument("--variant", default="", help="a peer's variant (Quix: windowed|plain)")
    parser.add_argument("--state-dir", type=Path)
    parser.add_argument("--result", type=Path, required=True)
    return parser.parse_args()


def flush_messages(args: argparse.Namespace) -> int:
    """Messages per insert, so that an insert holds about `--flush-rows` rows."""
    rows, per_message = int(args.flush_rows), int(args.events_per_message)
    return max(1, rows // max(1, per_message))


class Job:
    """Validate and enrich one message with tokenshare's own code; rows as Arrow."""

    def __init__(self) -> None:
        self.enricher = Enricher(Catalog.load(), MAX_MESSAGE_BYTES)
        self.rejected = 0

    def batches(
        self, topic: str, partition: int, offset: int, value: bytes | None
    ) -> list[pa.RecordBatch]:
        """The message's rows as Arrow, one batch per source partition; a step
        downstream joins many messages into one insert."""
        result = self.enricher.process([SourceMessage(topic, partition, offset, value)])
        self.rejected += len(result.dead_letters)
        return [rows.arrow for rows in result.rows]

    def rows(
        self, topic: str, partition: int, offset: int, value: bytes | None
    ) -> list[dict[str, Any]]:
        """The same rows, one dict each (for per-row frameworks; `ts` in epoch ms)."""
        result = self.enricher.process([SourceMessage(topic, partition, offset, value)])
        self.rejected += len(result.dead_letters)
        return [
            dict(zip(ROW_COLUMNS, values, strict=True))
            for rows in result.rows
            for values in zip(*(rows.columns[name] for name in ROW_COLUMNS), strict=True)
        ]


def joined(parts: Iterable[pa.RecordBatch]) -> pa.Table:
    """One Arrow table of many messages' row batches."""
    return to_arrow(pa.Table.from_batches(list(parts), schema=ROW_SCHEMA))


def to_arrow(rows: Any) -> pa.Table:
    """A worker's row batch as an Arrow table in raw_events' column order: the batch's
    own Arrow form where it has one, else its lists per column (`ts` in epoch ms)."""
    columns = rows if isinstance(rows, pa.Table | pa.RecordBatch) else getattr(rows, "arrow", None)
    if columns is None:
        columns = rows.columns if hasattr(rows, "columns") else rows
    if isinstance(columns, pa.RecordBatch):
        columns = pa.Table.from_batches([columns])
    if isinstance(columns, pa.Table):
        table = columns.select(list(ROW_COLUMNS))
    else:
        table = pa.table({name: columns[name] for name in ROW_COLUMNS})
    ts = table.column("ts")
    if ts.type != TS:
        table = table.set_column(ROW_COLUMNS.index("ts"), "ts", ts.cast(TS))
    return table


def concat(tables: Sequence[pa.Table]) -> pa.Table:
    """One table of many (a column all null in one batch takes the others' type)."""
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="default")


def from_rows(rows: Sequence[dict[str, Any]]) -> pa.Table:
    return to_arrow({name: [row[name] for row in rows] for name in ROW_COLUMNS})


class Store:
    """tokenshare's migrated database in an embedded chDB; inserts with insert_arrow."""

    def __init__(self, path: Path, table: str = "raw_events") -> None:
        self.client = connect(f"chdb://{path}")
        migrate(self.client, DATABASE)
        self.table = (
            f"{DATABASE}.raw_events"
            if table == "raw_events"
            else plain_table(self.client, DATABASE, f"{DATABASE}_plain")
        )
        self.stored = 0

    def insert(self, tables: Iterable[pa.Table]) -> int:
        parts = [t for t in tables if t.num_rows]
        if not parts:
            return 0
        table = concat(parts)
        self.client.insert_arrow(self.table, table, settings=INSERT_SETTINGS)
        rows = int(table.num_rows)
        self.stored += rows
        return rows

    def count(self) -> int:
        return int(self.client.query(f"SELECT count() FROM {self.table}").result_rows[0][0])

    def close(self) -> None:
        self.client.close()


def plain_table(client: Client, source_db: str, db: str) -> str:
    """A MergeTree table with raw_events' written columns and nothing else:
    no projection, no view, no MATERIALIZED columns."""
    types: dict[str, str] = {
        str(name): str(kind)
        for name, kind in client.query(
            "SELECT name, type FROM system.columns WHERE database = {db:String} "
            "AND table = 'raw_events'",
            parameters={"db": source_db},
        ).result_rows
    }
    columns = ", ".join(f"`{name}` {types[name]}" for name in ROW_COLUMNS)
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {db}.plain ({columns}) ENGINE = MergeTree ORDER BY ts"
    )
    return f"{db}.plain"


def write_result(path: Path, store: Store, **extra: Any) -> None:
    """The run's result document, written whole (the bench waits for the file)."""
    doc = {"stored": store.count(), **extra}
    partial = path.with_suffix(".partial")
    partial.write_bytes(orjson.dumps(doc))
    partial.rename(path)
