"""The dashboard command: the live web page over the store's read-only query path."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from tokenshare.cli.context import Context, console, fail

if TYPE_CHECKING:  # aiohttp and ClickHouse load when the command runs, not for --help
    from tokenshare.analysts.queries import Query
    from tokenshare.settings import Settings

HINT = "start the store (`tokenshare store`, or `tokenshare demo`); the page retries by itself"


def store_query(settings: Settings) -> Query:
    """Read-only queries through the store's query port (embedded) or the server.

    Never offline, whatever TOKENSHARE_QUERY_OFFLINE says: the dashboard runs for
    hours, and holding the embedded data path would keep the store from starting.
    With no store serving, each query raises StoreNotServing, which the page shows.
    """
    from tokenshare.sinks.query import run_query

    def query(sql: str, parameters: dict[str, Any]) -> list[list[Any]]:
        return run_query(settings, sql, parameters, offline=False).rows

    return query


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8050,
    show_default=True,
    type=int,
    envvar="TOKENSHARE_DASHBOARD_PORT",
    help="Port to listen on (0: any free).",
)
@click.pass_obj
def dashboard(ctx: Context, host: str, port: int) -> None:
    """Serve the live web dashboard: shares by any dimension with crossovers marked,
    the alert feed, top movers and catalog gaps, refreshed every 2 s.

    Reads through the running store (embedded) or the ClickHouse server; runs until
    Ctrl-C.
    """
    import asyncio

    from tokenshare.dashboard.server import NotVendored, build_app, serve
    from tokenshare.sinks.clickhouse import StoreError
    from tokenshare.sinks.owner import StoreBusy
    from tokenshare.sinks.query import QueryError

    settings = ctx.settings()
    try:
        app = build_app(
            store_query(settings),
            settings.clickhouse_database,
            # StoreBusy covers StoreNotServing: no store, or one still starting.
            unavailable=(StoreBusy, StoreError, QueryError, OSError),
            hint=HINT,
        )
    except NotVendored as exc:
        fail(str(exc), "run `make install`, then `tokenshare dashboard` again")

    def ready(url: str) -> None:
        console.print(f"dashboard at [bold]{url}[/] (Ctrl-C stops it)")

    try:
        asyncio.run(serve(app, host, port, ready))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc}", "choose another --port (0: any free)")
