"""Commands for the model catalog: gaps (what stored traffic it misses), apply."""

from __future__ import annotations

import csv
import io
import sys
from typing import TYPE_CHECKING, Any

import click
import orjson
from rich.console import Console
from rich.table import Table

from tokenshare.cli.context import Context, console, fail
from tokenshare.cli.query import query_or_fail

if TYPE_CHECKING:
    from tokenshare.settings import Settings

FORMATS = ["table", "csv", "json"]

_UNKNOWN_SLUGS = """
SELECT model, author, lab, sum(total_tokens) AS tokens, count() AS requests,
       min(day) AS first_day, max(day) AS last_day
FROM {db}.raw_events WHERE NOT identified
GROUP BY model, author, lab ORDER BY tokens DESC, model
"""
_TOTAL = "SELECT sum(total_tokens), count() FROM {db}.raw_events"


@click.group()
def catalog() -> None:
    """The model catalog against stored traffic: what it misses, and re-enrichment."""


def _out() -> Console:
    # Piped output is never cut: a wide console when stdout is not a terminal.
    return Console(width=None if sys.stdout.isatty() else 10_000)


@catalog.command()
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--limit", default=50, show_default=True, help="Rows per list (0: all).")
@click.option("--offline", is_flag=True, help="Read the embedded store while no store runs.")
@click.pass_obj
def gaps(ctx: Context, fmt: str, limit: int, offline: bool) -> None:
    """Slugs and labs the catalog does not place, by stored traffic.

    A slug stored as unidentified that the catalog knows now is listed as
    `known now`: `tokenshare catalog apply` re-enriches its rows.
    """
    from tokenshare.schema.catalog import Catalog
    from tokenshare.sinks.reenrich import STORED_SQL, plan, stored_slugs

    ctx = ctx_for(ctx, offline)
    db = ctx.settings().clickhouse_database
    cat = Catalog.load()
    total_tokens, _ = query_or_fail(ctx, _TOTAL.format(db=db)).rows[0]
    total = int(total_tokens or 0)
    slugs = []
    labs: dict[str, dict[str, Any]] = {}
    for model, author, lab, tokens, requests, first, last in query_or_fail(
        ctx, _UNKNOWN_SLUGS.format(db=db)
    ).rows:
        known = cat.lookup(str(model))
        slugs.append(
            {
                "slug": str(model),
                "author": str(author),
                "tokens": int(tokens),
                "share": int(tokens) / total if total else 0.0,
                "requests": int(requests),
                "first_day": str(first),
                "last_day": str(last),
                "status": "known now" if known.identified else "missing",
            }
        )
        if str(lab) == "unidentified" and cat.lookup(str(model)).lab == "unidentified":
            entry = labs.setdefault(str(author), {"author": str(author), "tokens": 0, "slugs": 0})
            entry["tokens"] += int(tokens)
            entry["slugs"] += 1
    lab_rows = sorted(labs.values(), key=lambda e: (-e["tokens"], e["author"]))
    for e in lab_rows:
        e["share"] = e["tokens"] / total if total else 0.0
    stale = plan(stored_slugs(query_or_fail(ctx, STORED_SQL.format(db=db)).rows), cat)
    if limit:
        slugs, lab_rows = slugs[:limit], lab_rows[:limit]
    summary = {
        "catalog_version": cat.version,
        "stale_rows": stale.rows,
        "stale_tokens": stale.tokens,
        "stale_share": stale.tokens / total if total else 0.0,
        "stale_months": sorted(stale.months),
    }
    _print_gaps(fmt, slugs, lab_rows, summary)


def ctx_for(ctx: Context, offline: bool) -> Context:
    """The context with --offline applied to the query settings."""
    if offline:
        return Context({**ctx.overrides, "query_offline": True})
    return ctx


def _print_gaps(
    fmt: str, slugs: list[dict[str, Any]], labs: list[dict[str, Any]], summary: dict[str, Any]
) -> None:
    if fmt == "json":
        sys.stdout.buffer.write(
            orjson.dumps(
                {"slugs": slugs, "labs": labs, "stale": summary}, option=orjson.OPT_INDENT_2
            )
            + b"\n"
        )
        return
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["kind", "name", "author", "tokens", "share", "status"])
        for s in slugs:
            writer.writerow(
                ["slug", s["slug"], s["author"], s["tokens"], f"{s['share']:.6f}", s["status"]]
            )
        for lab in labs:
            writer.writerow(
                [
                    "lab",
                    lab["author"],
                    lab["author"],
                    lab["tokens"],
                    f"{lab['share']:.6f}",
                    "missing",
                ]
            )
        sys.stdout.write(buf.getvalue())
        return
    out = _out()
    table = Table(title=f"Slugs stored as unidentified (catalog {summary['catalog_version']})")
    for name in ("slug", "author", "tokens", "share", "requests", "first", "last", "status"):
        table.add_column(
            name,
            justify="right" if name in ("tokens", "share", "requests") else "left",
            no_wrap=True,
        )
    for s in slugs:
        table.add_row(s["slug"], s["author"], f"{s['tokens']:,}", f"{s['share']:.2%}",
                      f"{s['requests']:,}", s["first_day"], s["last_day"], s["status"])  # fmt: skip
    out.print(table)
    labs_table = Table(title="Labs the catalog does not know")
    for name in ("author", "tokens", "share", "slugs"):
        labs_table.add_column(name, justify="left" if name == "author" else "right", no_wrap=True)
    for lab in labs:
        labs_table.add_row(
            lab["author"], f"{lab['tokens']:,}", f"{lab['share']:.2%}", str(lab["slugs"])
        )
    out.print(labs_table)
    if summary["stale_rows"]:
        out.print(
            f"{summary['stale_rows']:,} stored rows ({summary['stale_share']:.2%} of tokens, "
            f"months {', '.join(map(str, summary['stale_months']))}) are enriched differently "
            "from the "
            "current catalog: `tokenshare catalog apply` re-enriches them"
        )
    else:
        out.print("every stored row is enriched as the current catalog says")


@catalog.command("apply")
@click.option("--dry-run", is_flag=True, help="Only say what would change.")
@click.option(
    "--no-store-running",
    is_flag=True,
    help="Server DSN: confirm that no `tokenshare store` writes to it meanwhile.",
)
@click.pass_obj
def apply_command(ctx: Context, dry_run: bool, no_store_running: bool) -> None:
    """Re-enrich stored rows with the current catalog and rebuild the rollups of the
    months they fall in, so that past shares become what a fresh ingest gives.

    This writes, so no store may run: embedded, it takes the data path (and says
    who holds it when a store does); with a server DSN, pass --no-store-running.
    """
    from tokenshare.schema.catalog import Catalog
    from tokenshare.sinks.reenrich import STORED_SQL, apply, plan, stored_slugs

    settings = ctx.settings()
    if settings.clickhouse_cluster:
        fail(
            "catalog apply does not rewrite clustered tables",
            "run it against each shard's node with its own DSN, stores stopped",
        )
    cat = Catalog.load()
    with _writer(settings, no_store_running or dry_run) as client:
        db = settings.clickhouse_database
        try:
            if dry_run:
                todo = plan(stored_slugs(client.query(STORED_SQL.format(db=db)).result_rows), cat)
                _print_plan(todo, dry_run=True)
                return
            with console.status("re-enriching stored rows and rebuilding rollups"):
                report = apply(client, db, cat)
        except Exception as exc:  # the driver's error types differ by backend
            if "UNKNOWN_TABLE" in str(exc) or "UNKNOWN_DATABASE" in str(exc):
                fail(f"no stored events in {db} ({str(exc).splitlines()[0]})",
                     "run `tokenshare demo` or replay events first")  # fmt: skip
            raise
    _print_plan(report.plan, dry_run=False, rollups=report.rollups)


def _print_plan(todo: Any, *, dry_run: bool, rollups: tuple[str, ...] = ()) -> None:
    out = _out()
    if not todo.models:
        out.print(f"nothing to do: every stored row matches catalog {todo.catalog_version}")
        return
    verb = "would re-enrich" if dry_run else "re-enriched"
    out.print(
        f"{verb} {todo.rows:,} rows ({todo.tokens:,} tokens) of {len(todo.models)} slugs "
        f"with catalog {todo.catalog_version}; months {', '.join(map(str, sorted(todo.months)))}"
        + (f"; rebuilt {', '.join(rollups)}" if rollups else "")
    )
    table = Table(title="slugs whose enrichment changes")
    for name in ("slug", "lab", "origin", "weights", "size"):
        table.add_column(name, no_wrap=True)
    for slug, info in sorted(todo.models.items()):
        table.add_row(slug, info.lab, info.origin_bloc, info.weights, info.size_class)
    out.print(table)


class _writer:
    """A writing client, held only while no store writes (see apply_command)."""

    def __init__(self, settings: Settings, server_confirmed: bool) -> None:
        self.settings = settings
        self.server_confirmed = server_confirmed
        self._lock: Any = None
        self._client: Any = None

    def __enter__(self) -> Any:
        from tokenshare.sinks.clickhouse import StoreError, connect
        from tokenshare.sinks.owner import OwnerLock, StoreBusy, data_path_of

        settings = self.settings
        if settings.embedded:
            self._lock = OwnerLock(data_path_of(settings.dsn))
            try:
                self._lock.acquire()
            except StoreBusy as exc:
                fail(
                    f"the embedded store is in use: {exc}",
                    "stop the store (and `tokenshare demo --keep-running`), run "
                    "`tokenshare catalog apply` again, then start the store",
                )
        elif not self.server_confirmed:
            fail(
                "catalog apply rewrites stored months; rows a running store writes meanwhile "
                "would be lost",
                "stop every `tokenshare store` on this server, then run again with "
                "--no-store-running",
            )
        try:
            self._client = connect(settings.dsn)
        except StoreError as exc:
            self.__exit__(None, None, None)
            fail(str(exc), "check --dsn; embedded, no other process may hold the data path")
        return self._client

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()
        if self._lock is not None:
            self._lock.release()
