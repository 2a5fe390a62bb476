"""The main job: the whole pipeline on this machine, with a summary at the end."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from tokenshare.alert_feed import AlertFeed, describe
from tokenshare.console import err_console, progress_bar
from tokenshare.localstack import LocalKafka
from tokenshare.processes import spawn, stop, wait_until
from tokenshare.producers.send import send_events
from tokenshare.producers.simulator import SimConfig, simulate
from tokenshare.schema.outputs import AlertMessage
from tokenshare.settings import Settings
from tokenshare.sinks.owner import data_path_of, read_owner
from tokenshare.sinks.query import run_query
from tokenshare.streams.topics import ensure_topics, group_lag

console = Console()
#: A few deliberately invalid events, to show the dead-letter path at work.
INVALID_RATIO = 0.001

WEEKLY_BY_BLOC = """
SELECT toMonday(day) AS week,
       sumIf(total_tokens, origin_bloc = 'China') AS china,
       sumIf(total_tokens, origin_bloc = 'US') AS us,
       sumIf(total_tokens, origin_bloc = 'RoW') AS row,
       sumIf(total_tokens, origin_bloc = 'unidentified') AS unidentified,
       sum(total_tokens) AS total
FROM {db}.raw_events GROUP BY week ORDER BY week
"""


def run_demo(settings: Settings, *, events: int, batch: int, seed: int, keep_running: bool) -> None:
    logs = settings.home / "logs"
    port = int(settings.kafka_bootstrap.rsplit(":", 1)[1])
    kafka = LocalKafka(settings.home, port=port)
    started = time.monotonic()
    kafka.start(console=console)
    ensure_topics(settings)
    console.print(
        f"[green]Kafka ready[/] at {kafka.bootstrap} in {time.monotonic() - started:.1f}s"
    )

    store = spawn(settings, ["store"], logs / "store.log")
    worker = spawn(settings, ["worker"], logs / "worker.log")
    try:
        data_path = data_path_of(settings.dsn)
        wait_until(
            lambda: _serving(data_path) or store.poll() is not None,
            120,
            "the store to open ClickHouse",
        )
        if store.poll() is not None:
            raise RuntimeError(f"the store exited; see {logs / 'store.log'}")
        console.print(f"[green]store and worker running[/] (logs in {logs})")

        t0 = time.monotonic()
        feed = AlertFeed(settings, _show_alert).start()
        config = SimConfig(events=events, seed=seed, invalid_ratio=INVALID_RATIO)
        report = send_events(
            settings,
            simulate(config),
            total=events + round(events * INVALID_RATIO),
            batch=batch,
            label="producing",
        )
        _wait_stored(settings)
        elapsed = time.monotonic() - t0
        # The share stage ticks every second: let it finish the last windows.
        wait_until(
            lambda: feed.quiet_for(3 * settings.shares_interval_s + 1),
            60,
            "the share stage to settle",
        )
        feed.stop()
        console.print(
            f"[green]{report.sent:,} events[/] through Kafka into ClickHouse in {elapsed:.1f}s "
            f"([bold]{report.sent / elapsed:,.0f} events/s[/] end to end); "
            f"{report.invalid:,} invalid events went to {settings.dlq_topic}"
        )
        _summary(settings)
        _crossovers(settings, feed.seen)
    finally:
        if not keep_running:
            stop(worker)
            stop(store)
            kafka.stop()
    console.print(
        Panel.fit(
            "Query further:\n"
            '  tokenshare sql "SELECT model_canonical, sum(total_tokens) AS tokens FROM '
            'tokenshare.raw_events GROUP BY 1 ORDER BY 2 DESC LIMIT 10"\n'
            "Run it yourself:  tokenshare stack up · tokenshare store · tokenshare worker · "
            "tokenshare simulate --events 100000",
            title="next",
        )
    )


def _serving(data_path: Path) -> bool:
    owner = read_owner(data_path)
    return owner is not None and owner.query_url is not None


def _wait_stored(settings: Settings) -> None:
    """Until the worker and the store have committed everything on their topics."""

    def drained() -> bool:
        return (
            group_lag(settings, settings.ingest_group, settings.events_topic) == 0
            and group_lag(settings, settings.store_group, settings.rows_topic) == 0
        )

    with progress_bar("storing", None) as advance:
        stored = 0

        def progressed() -> bool:
            nonlocal stored
            now = _count(settings)
            advance(now - stored)
            stored = now
            return drained()

        wait_until(progressed, 600, "the worker and store to catch up", interval=1.0)


def _count(settings: Settings) -> int:
    rows = run_query(settings, f"SELECT count() FROM {settings.clickhouse_database}.raw_events")
    return int(rows.rows[0][0])


def _summary(settings: Settings) -> None:
    result = run_query(settings, WEEKLY_BY_BLOC.format(db=settings.clickhouse_database))
    table = Table(title="Weekly tokens by origin bloc (ISO weeks, from ClickHouse)")
    for name in ("week", "China", "US", "RoW", "unident.", "CN %", "US %", "lead"):
        table.add_column(name, justify="right")
    leader = None
    for week, china, us, rest, unidentified, total in result.rows:
        now = "China" if china > us else "US"
        lead = f"[bold magenta]{now} overtakes[/]" if leader and now != leader else now
        leader = now
        table.add_row(
            str(week)[:10],
            _short(china),
            _short(us),
            _short(rest),
            _short(unidentified),
            f"{china / total:.1%}" if total else "-",
            f"{us / total:.1%}" if total else "-",
            lead,
        )
    console.print(table)
    count = _count(settings)
    console.print(f"[bold]{count:,}[/] events stored in {settings.clickhouse_database}.raw_events")


def _show_alert(alert: AlertMessage) -> None:
    """Live: origin-bloc and open/closed crossovers; the rest are counted in the summary."""
    if alert.rule == "crossover" and alert.dimension in ("origin_bloc", "weights"):
        err_console.print(describe(alert))


def _crossovers(settings: Settings, seen: int) -> None:
    db = settings.clickhouse_database
    result = run_query(
        settings,
        f"SELECT window_label, text FROM {db}.alerts FINAL WHERE rule = 'crossover' "
        "AND status = 'final' AND dimension = 'origin_bloc' AND window_kind = 'iso_week' "
        "ORDER BY window_start",
    )
    table = Table(title="Final origin-bloc crossovers (ISO weeks)")
    table.add_column("week")
    table.add_column("alert")
    for label, text in result.rows:
        table.add_row(str(label), str(text))
    console.print(table)
    console.print(
        f"{seen:,} alerts fired in all (crossovers, thresholds, concentration, jumps, "
        f'ranks); see them with: tokenshare sql "SELECT rule, status, text FROM '
        f'{db}.alerts FINAL ORDER BY window_start"'
    )


def _short(tokens: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if tokens >= size:
            return f"{tokens / size:.1f}{unit}"
    return str(tokens)
