"""Commands for analysts: sql."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson
from rich.console import Console
from rich.table import Table

from tokenshare.cli.context import Context, fail

if TYPE_CHECKING:  # the ClickHouse client loads when a query runs, not for --help
    from tokenshare.sinks.query import QueryResult

FORMATS = ["table", "csv", "json", "parquet", "arrow"]

#: Binary formats written by the engine itself, so their column types are
#: ClickHouse's own (UInt64 stays uint64, DateTime keeps its time zone) whether
#: the query went to the running store or ran offline.
ENGINE_FORMATS = {"parquet": "Parquet", "arrow": "ArrowStream"}


#: What to do when the store holds no tables yet.
NO_DATA_HINT = "run `tokenshare demo` or replay events first (`tokenshare replay FILE`)"


def query_or_fail(
    ctx: Context, statement: str, parameters: dict[str, Any] | None = None
) -> QueryResult:
    """Run read-only SQL; on failure exit with what went wrong and what to do."""
    from tokenshare.sinks.query import run_query

    with _failing_clearly():
        return run_query(ctx.settings(), statement, parameters)
    raise AssertionError("unreachable: _failing_clearly exits on every error")


@contextmanager
def _failing_clearly() -> Iterator[None]:
    """Exit with what went wrong and what to do, for every way a query fails."""
    from tokenshare.sinks.clickhouse import StoreError
    from tokenshare.sinks.owner import StoreBusy
    from tokenshare.sinks.query import QueryError, StoreNotServing

    try:
        yield
    except QueryError as exc:
        if "UNKNOWN_DATABASE" in str(exc) or "UNKNOWN_TABLE" in str(exc):
            fail(f"the store has no such table yet ({exc})", NO_DATA_HINT)
        fail(
            f"ClickHouse refused the query: {exc}",
            "queries are read-only (SELECT, SHOW, DESCRIBE, one statement); check names with "
            '`tokenshare sql "SHOW TABLES FROM tokenshare"`',
        )
    except StoreNotServing as exc:
        fail(
            str(exc),
            "start the store, or retry in a moment if it is restarting; to read the data "
            "path while no store runs: `tokenshare sql --offline ...` (any command: "
            "TOKENSHARE_QUERY_OFFLINE=1)",
        )
    except StoreBusy as exc:
        fail(str(exc), "offline reads need the data path free: query the running store instead")
    except StoreError as exc:
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
    help="Write to this file instead of stdout (required for parquet and arrow).",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Open the embedded data path directly (only while no store runs); "
    "without it, queries go to the running store.",
)
@click.pass_obj
def sql(
    ctx: Context,
    statement: str,
    fmt: str,
    params: tuple[str, ...],
    output: Path | None,
    offline: bool,
) -> None:
    """Run read-only SQL against the store (also while it ingests).

    Queries go to the running store's SQL endpoint, read-only: SELECT, SHOW,
    DESCRIBE, EXPLAIN, one statement, SETTINGS allowed. --offline reads the
    embedded data path itself while no store runs (refused while one does).

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
    if fmt in ENGINE_FORMATS and output is None:
        fail(f"{fmt} is binary", f"add -o FILE.{fmt}")
    if offline:
        ctx.overrides["query_offline"] = True
    if fmt in ENGINE_FORMATS and output is not None:
        from tokenshare.sinks.query import run_raw

        with _failing_clearly():
            data = run_raw(ctx.settings(), statement, ENGINE_FORMATS[fmt], bound)
        output.write_bytes(data)
        click.echo(f"{len(data):,} bytes of {fmt} written to {output}", err=True)
        return
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
    """The result as csv, json (array of objects) or table (csv); parquet and arrow
    come from the engine itself (ENGINE_FORMATS)."""
    if fmt == "json":
        return (
            orjson.dumps(
                [
                    dict(zip(result.columns, map(_json_cell, row), strict=True))
                    for row in result.rows
                ],
                default=str,
            )
            + b"\n"
        )
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(result.columns)
    writer.writerows(result.rows)
    return text.getvalue().encode()


def _json_cell(value: object) -> object:
    """Integers past 64 bits (Int128, UInt256) as strings, as ClickHouse's JSON writes them."""
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        return str(value)
    return value


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "NULL" if value is None else str(value)
