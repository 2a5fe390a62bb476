"""Commands for analysts: sql."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson
from rich.console import Console
from rich.table import Table

from tokenshare.cli.context import Context, fail

if TYPE_CHECKING:  # the ClickHouse client loads when a query runs, not for --help
    from tokenshare.sinks.query import QueryResult

FORMATS = ["table", "csv", "json", "parquet"]


#: What to do when the store holds no tables yet.
NO_DATA_HINT = "run `tokenshare demo` or replay events first (`tokenshare replay FILE`)"


def query_or_fail(
    ctx: Context, statement: str, parameters: dict[str, Any] | None = None
) -> QueryResult:
    """Run read-only SQL; on failure exit with what went wrong and what to do."""
    from tokenshare.sinks.clickhouse import StoreError
    from tokenshare.sinks.owner import StoreBusy
    from tokenshare.sinks.query import QueryError, run_query

    try:
        return run_query(ctx.settings(), statement, parameters)
    except QueryError as exc:
        if "UNKNOWN_DATABASE" in str(exc) or "UNKNOWN_TABLE" in str(exc):
            fail(f"the store has no such table yet ({exc})", NO_DATA_HINT)
        fail(
            f"ClickHouse refused the query: {exc}",
            "queries are read-only (SELECT, SHOW, DESCRIBE, one statement); check names with "
            '`tokenshare sql "SHOW TABLES FROM tokenshare"`',
        )
    except (StoreBusy, StoreError) as exc:
        fail(str(exc), "retry in a moment, or check `tokenshare stack status`")


@click.command()
@click.argument("statement")
@click.option("--format", "fmt", default="table", show_default=True, type=click.Choice(FORMATS))
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="Bind {NAME:Type} in the statement, server-side (repeatable).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Write to this file instead of stdout (required for parquet).",
)
@click.pass_obj
def sql(
    ctx: Context, statement: str, fmt: str, params: tuple[str, ...], output: Path | None
) -> None:
    """Run read-only SQL against the store (also while it ingests).

    \b
    Examples:
      tokenshare sql "SELECT origin_bloc, sum(total_tokens) FROM tokenshare.raw_events
                      GROUP BY origin_bloc"
      tokenshare sql "SELECT week, token_share FROM tokenshare.weekly_shares
                      WHERE dimension = 'model' AND value = {m:String} ORDER BY week"
                      --param m=deepseek/deepseek-v3.2 --format csv
    """
    bound = {}
    for item in params:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            fail(f"--param {item!r} is not NAME=VALUE", "write e.g. --param model=qwen/qwen3-max")
        bound[name] = value
    if fmt == "parquet" and output is None:
        fail("parquet is binary", "add -o FILE.parquet")
    result = query_or_fail(ctx, statement, bound)
    data = render(result, fmt)
    if output is not None:
        output.write_bytes(data)
        click.echo(f"{len(result.rows):,} rows written to {output}", err=True)
    elif fmt == "table":
        table = Table(*result.columns)
        for row in result.rows:
            table.add_row(*(_cell(v) for v in row))
        Console().print(table)
    else:
        sys.stdout.buffer.write(data)


def render(result: QueryResult, fmt: str) -> bytes:
    """The result in a file format: csv, json (array of objects), parquet, or table (csv)."""
    if fmt == "json":
        return (
            orjson.dumps(
                [dict(zip(result.columns, row, strict=True)) for row in result.rows], default=str
            )
            + b"\n"
        )
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = {name: [row[i] for row in result.rows] for i, name in enumerate(result.columns)}
        buffer = io.BytesIO()
        pq.write_table(pa.table(columns), buffer)
        return buffer.getvalue()
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(result.columns)
    writer.writerows(result.rows)
    return text.getvalue().encode()


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "NULL" if value is None else str(value)
