"""The ``tokenshare`` group and the list of its commands.

Heavy imports (Faust, ClickHouse, matplotlib) happen inside the commands, so
that ``tokenshare --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path

import click

from tokenshare.cli import (
    adapters,
    analyst,
    bench,
    catalog,
    clickhouse,
    dashboard,
    data,
    doctor,
    pipeline,
    query,
    rules,
    study,
)
from tokenshare.cli.context import Context
from tokenshare.cli.stack import stack

COMMANDS: list[click.Command] = [
    pipeline.topics,
    pipeline.worker,
    pipeline.store,
    pipeline.demo,
    clickhouse.migrate,
    data.simulate,
    data.replay,
    data.export_schema,
    query.sql,
    catalog.catalog,
    doctor.doctor,
    analyst.shares,
    analyst.crossovers,
    analyst.alerts,
    analyst.top,
    analyst.retention,
    study.requests,
    study.tools,
    study.prices,
    study.volume,
    study.regions,
    study.breadth,
    analyst.plot,
    rules.rules,
    dashboard.dashboard,
    adapters.ingest_http,
    bench.bench,
    stack,
]


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    commands=COMMANDS,
)
# The installed distribution's version (importlib.metadata), not a copy in the code.
@click.version_option(package_name="tokenshare", prog_name="tokenshare")
@click.option("--bootstrap", envvar="TOKENSHARE_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers.")
@click.option(
    "--dsn",
    envvar="TOKENSHARE_CLICKHOUSE_DSN",
    help="ClickHouse: chdb:///abs/path (embedded) or http(s)://user:pw@host:port.",
)
@click.option("--prefix", envvar="TOKENSHARE_TOPIC_PREFIX", help="Topic name prefix.")
@click.option(
    "--home",
    envvar="TOKENSHARE_HOME",
    type=click.Path(path_type=Path),
    help="Folder for local data (default .tokenshare).",
)
@click.pass_context
def main(
    ctx: click.Context,
    bootstrap: str | None,
    dsn: str | None,
    prefix: str | None,
    home: Path | None,
) -> None:
    """tokenshare: live token shares of LLM traffic, from Kafka to ClickHouse.

    Start with `tokenshare demo`; see README.md for the rest.
    """
    ctx.obj = Context(
        {"kafka_bootstrap": bootstrap, "clickhouse_dsn": dsn, "topic_prefix": prefix, "home": home}
    )
