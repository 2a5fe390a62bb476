"""The ``tokenshare`` command: every entry point, each with --help.

Heavy imports (Faust, ClickHouse) happen inside the commands, so that
``tokenshare --help`` stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

from tokenshare.settings import Settings

console = Console(stderr=True)


class Context:
    def __init__(self, overrides: dict[str, Any]) -> None:
        self.overrides = {k: v for k, v in overrides.items() if v is not None}

    def settings(self, **more: Any) -> Settings:
        return Settings(**{**self.overrides, **more})


def fail(message: str, hint: str) -> NoReturn:
    """Exit 1 with what went wrong and what to do next."""
    console.print(f"[bold red]error:[/] {message}")
    console.print(f"[yellow]next:[/] {hint}")
    sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


def _register() -> None:
    from tokenshare.commands import analyst, clickhouse, data, doctor, pipeline, query
    from tokenshare.localstack.cli import stack

    main.add_command(stack)
    for module in (pipeline, clickhouse, data, query, doctor, analyst):
        for command in module.COMMANDS:
            main.add_command(command)
    __import__("tokenshare.producers.adapters.cli", fromlist=["register"]).register(main)
    list(map(main.add_command, __import__("tokenshare.bench.cli", fromlist=["_"]).COMMANDS))


_register()
