"""Commands that run the pipeline: topics, worker, store, demo."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from tokenshare.cli.context import Context, console, fail
from tokenshare.retry import Backoff, RetryPolicy

if TYPE_CHECKING:
    from tokenshare.settings import Settings


@click.command()
@click.pass_obj
def topics(ctx: Context) -> None:
    """Create the events, rows and dead-letter topics if missing."""
    from kafka.errors import KafkaError

    from tokenshare.streams.topics import ensure_topics

    settings = ctx.settings()
    try:
        created = ensure_topics(settings)
    except KafkaError as exc:
        fail(
            f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}",
            "start the local broker with `tokenshare stack up` or pass --bootstrap",
        )
    console.print(f"created: {', '.join(created) or 'nothing (all present)'}")


@click.command()
@click.option(
    "--loglevel",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option("--web-port", type=int, help="Port of the worker's web endpoint (default 6066).")
@click.pass_obj
def worker(ctx: Context, loglevel: str, web_port: int | None) -> None:
    """Run a stream worker (Faust): validate, enrich, dead-letter, forward rows.

    Run several to share the partitions; each needs its own --web-port.
    """
    from tokenshare.streams.app import run_worker

    settings = ctx.settings(**({"worker_web_port": web_port} if web_port else {}))
    _wait_for_topics(settings)
    started = time.monotonic()
    try:
        # The share stage reads its day sums from the store: this is where the two meet.
        run_worker(settings, store_reader(settings), loglevel=loglevel)
    except SystemExit as stopped:
        _start_again_if_early(stopped, started)
        raise


#: A worker that fails within this many seconds of starting starts again, this many times.
STARTUP_WINDOW_S, STARTUP_ATTEMPTS = 60.0, 5
_ATTEMPT_ENV = "TOKENSHARE_WORKER_START_ATTEMPT"


def _start_again_if_early(stopped: SystemExit, started: float) -> None:
    """Faust's own consumers exit the worker when a connection resets in its first
    seconds (the app cannot be started twice in one process): start the whole
    command again, after a jittered pause, instead of leaving it to a supervisor.
    A clean stop (exit 0) or a failure after the start-up window exits as usual."""
    code = stopped.code if isinstance(stopped.code, int) else 1
    attempt = int(os.environ.get(_ATTEMPT_ENV, "1"))
    if code == 0 or time.monotonic() - started > STARTUP_WINDOW_S:
        return
    if attempt >= STARTUP_ATTEMPTS:
        console.print(f"worker start-up failed {attempt} times; giving up (exit {code})")
        return
    pause = Backoff(RetryPolicy(first_s=1.0, max_s=10.0))
    for _ in range(attempt):
        wait = pause.failed()
    console.print(
        f"worker start-up failed (exit {code}); starting again in {wait:.1f} s "
        f"(attempt {attempt + 1} of {STARTUP_ATTEMPTS})"
    )
    time.sleep(wait)
    os.environ[_ATTEMPT_ENV] = str(attempt + 1)
    os.execv(sys.executable, [sys.executable, "-m", "tokenshare", *sys.argv[1:]])


def store_reader(settings: Settings) -> Callable[[str], list[list[Any]]]:
    """The share stage's query callable: SQL -> rows, asked of the running store.

    It never opens the embedded engine itself (that would take the data path from
    a store restarting after a crash): while no store serves, it raises
    StoreNotServing, "store not serving ..., retrying", and the share stage skips
    the tick and asks again on the next one."""
    from tokenshare.sinks.query import StoreNotServing, run_query

    def query(sql: str) -> list[list[Any]]:
        try:
            return run_query(settings, sql, offline=False).rows
        except StoreNotServing as exc:
            raise StoreNotServing(f"{exc} (retrying on the next tick)") from exc

    return query


@click.command()
@click.option("--query-port", type=int, help="Loopback port for read-only SQL (0: any free).")
@click.pass_obj
def store(ctx: Context, query_port: int | None) -> None:
    """Run the store: rows topic -> ClickHouse, and serve read-only SQL.

    With an embedded (chdb://) DSN exactly one store may run per data path.
    """
    import logging

    from tokenshare import logs
    from tokenshare.sinks.owner import StoreBusy
    from tokenshare.sinks.store import build_store
    from tokenshare.streams.shares.config import load_rules
    from tokenshare.watermark import WatermarkRule

    settings = ctx.settings(**({"store_query_port": query_port} if query_port is not None else {}))
    logs.setup("store", settings.log_format, logging.INFO)
    _wait_for_topics(settings)
    # Late rows are counted by the share stage's own watermark rule, from its rules file.
    rules = load_rules(settings.rules_file)
    try:
        runner = build_store(settings, WatermarkRule(rules.lateness, rules.idle_partition_seconds))
    except StoreBusy as exc:
        fail(
            str(exc),
            "a second store on one embedded data path is never started: stop the holder "
            "named above (`tokenshare demo` stops its own), then retry",
        )
    runner.install_signal_handlers()
    console.print(
        f"store writing {settings.clickhouse_database} at {settings.dsn}; SQL at {runner.query_url}"
    )
    runner.run()


def _wait_for_topics(settings: Settings) -> None:
    from tokenshare.streams.topics import KafkaUnavailable, ensure_topics

    try:
        ensure_topics(settings, wait_s=settings.kafka_startup_wait_s)
    except KafkaUnavailable as exc:
        fail(str(exc), "start the broker, then this command again (a supervisor retries it)")


@click.command()
@click.option("--events", default=300_000, show_default=True, help="Events to simulate.")
@click.option("--batch", default=500, show_default=True, help="Events per Kafka message.")
@click.option("--seed", default=7, show_default=True)
@click.option("--keep-running", is_flag=True, help="Leave Kafka, worker and store running.")
@click.pass_obj
def demo(ctx: Context, events: int, batch: int, seed: int, keep_running: bool) -> None:
    """The main job: start Kafka, the store and a worker, replay the simulated
    market (Nov 2025 - May 2026), and print a summary from ClickHouse."""
    from tokenshare.demo import run_demo

    run_demo(ctx.settings(), events=events, batch=batch, seed=seed, keep_running=keep_running)
