"""``tokenshare stack``: run the local Kafka broker (up, down, status, wipe)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table

from tokenshare.cli.context import console

if TYPE_CHECKING:  # pydantic loads when a stack command runs, not for --help
    from tokenshare.localstack.kafka import LocalKafka


def _settings_home() -> Path:
    from tokenshare.settings import Settings

    return Settings().home


def _settings_port() -> int:
    """The port of ``TOKENSHARE_KAFKA_BOOTSTRAP`` when it points at this machine, else 19092."""
    from tokenshare.settings import Settings

    host, _, port = Settings().kafka_bootstrap.split(",")[0].rpartition(":")
    if host in ("127.0.0.1", "localhost") and port.isdigit():
        return int(port)
    return 19092


def _kafka(home: Path | None, port: int | None) -> LocalKafka:
    from tokenshare.localstack.kafka import LocalKafka

    return LocalKafka(
        home if home is not None else _settings_home(),
        port=port if port is not None else _settings_port(),
    )


home_option = click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of the local stack (the broker uses HOME/kafka). "
    "[default: TOKENSHARE_HOME or .tokenshare]",
)
port_option = click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Client port on 127.0.0.1; the controller uses PORT+1. "
    "[default: the port of TOKENSHARE_KAFKA_BOOTSTRAP, or 19092]",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def stack() -> None:
    """Run the local Apache Kafka broker (single node, KRaft, no Docker).

    The jars come from Maven Central the first time (needs Java 17 and Maven) and are
    cached outside the repository; the broker's data and logs live under HOME/kafka.
    """


@stack.command()
@home_option
@port_option
@click.option(
    "--timeout",
    type=click.FloatRange(1),
    default=90.0,
    show_default=True,
    help="Seconds to wait for the broker to answer.",
)
def up(home: Path | None, port: int | None, timeout: float) -> None:
    """Start the broker (fetch jars and format storage on first use) and wait until ready.

    Does nothing if the broker of HOME already runs.
    """
    from tokenshare.localstack.kafka import LocalStackError

    kafka = _kafka(home, port)
    was_running = kafka.is_running()
    try:
        kafka.start(timeout=timeout, console=console)
    except LocalStackError as exc:
        raise click.ClickException(str(exc)) from exc
    verb = "already running" if was_running else "ready"
    console.print(
        f"[green]✓[/] Kafka {kafka.version} {verb} on [bold]{kafka.bootstrap}[/] "
        f"(pid {kafka.pid()}, log {kafka.log_file})"
    )
    console.print(f"  stop it with: tokenshare stack down --home {kafka.home}")


@stack.command()
@home_option
@click.option(
    "--timeout",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="Seconds to wait after SIGTERM before SIGKILL.",
)
def down(home: Path | None, timeout: float) -> None:
    """Stop the broker (SIGTERM, then SIGKILL after --timeout). Keeps its data."""
    kafka = _kafka(home, None)
    pid = kafka.pid()
    if pid is None:
        console.print(f"Kafka is not running (home {kafka.home}).")
        return
    with console.status(f"Stopping Kafka (pid {pid})…"):
        kafka.stop(timeout=timeout)
    console.print(f"[green]✓[/] Kafka stopped (pid {pid}); data kept in {kafka.dir}")


@stack.command()
@home_option
@port_option
def status(home: Path | None, port: int | None) -> None:
    """Show whether the broker runs and answers. Exits 1 when it is not ready."""
    from tokenshare.localstack.kafka import cache_dir

    kafka = _kafka(home, port)
    pid = kafka.pid()
    ready = pid is not None and kafka.is_ready()
    jars = cache_dir(kafka.version)
    table = Table(show_header=False, box=None)
    table.add_row("version", kafka.version)
    table.add_row("bootstrap", kafka.bootstrap)
    table.add_row("process", f"pid {pid}" if pid is not None else "[red]not running[/]")
    table.add_row("ready", "[green]yes[/]" if ready else "[red]no[/]")
    table.add_row("data", str(kafka.dir))
    table.add_row("log", str(kafka.log_file))
    table.add_row("jars", f"{jars} ({'cached' if (jars / 'libs').is_dir() else 'not fetched'})")
    Console().print(table)
    if not ready:
        hint = (
            "start it with: tokenshare stack up"
            if pid is None
            else f"it is starting or stuck: see {kafka.log_file}"
        )
        console.print(hint)
        raise SystemExit(1)


@stack.command()
@home_option
@click.confirmation_option(
    "--yes", prompt="Stop the broker and delete all its topics and data?", help="Do not ask."
)
def wipe(home: Path | None) -> None:
    """Stop the broker and delete HOME/kafka (topics, offsets, logs). Keeps the jar cache."""
    kafka = _kafka(home, None)
    with console.status("Stopping Kafka and deleting its data…"):
        kafka.wipe()
    console.print(f"[green]✓[/] wiped {kafka.dir}")


@stack.command()
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option(
    "--list", "list_only", is_flag=True, help="Only show each tool and whether it is built."
)
def tools(names: tuple[str, ...], list_only: bool) -> None:
    """Build the Go tools the tests run (alertmanager, prometheus, promtool), once.

    They are built with `go install` from the Go module proxy (GOPROXY, as `go env`
    says) into the cache beside the Kafka jars; later runs reuse them. NAME picks some.
    """
    from tokenshare.localstack.gotools import TOOLS, ensure_tool
    from tokenshare.localstack.kafka import LocalStackError

    unknown = sorted(set(names) - set(TOOLS))
    if unknown:
        raise click.BadParameter(
            f"unknown tool {', '.join(unknown)}; choose from {', '.join(TOOLS)}",
            param_hint="NAME",
        )
    chosen = [TOOLS[n] for n in (names or tuple(TOOLS))]
    if list_only:
        table = Table(show_header=True, box=None)
        for column in ("tool", "version", "binary"):
            table.add_column(column)
        for tool in chosen:
            state = str(tool.binary) if tool.is_built() else "[yellow]not built[/]"
            table.add_row(tool.name, tool.version, state)
        Console().print(table)
        return
    for tool in chosen:
        try:
            path = ensure_tool(tool, console)
        except LocalStackError as exc:
            raise click.ClickException(str(exc)) from exc
        console.print(f"[green]✓[/] {tool.name} {tool.version}: {path}")
