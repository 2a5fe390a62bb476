"""The main job: the whole pipeline on this machine, with a summary at the end."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from tokenshare import kafka_clients
from tokenshare.alert_feed import AlertFeed, describe
from tokenshare.console import err_console, progress_bar
from tokenshare.localstack import LocalKafka
from tokenshare.processes import spawn, stop, wait_until
from tokenshare.producers.send import send_events
from tokenshare.producers.simulator import SimConfig, simulate
from tokenshare.schema.changes import RollupChange
from tokenshare.schema.outputs import AlertMessage
from tokenshare.settings import Settings
from tokenshare.sinks.owner import data_path_of, read_owner
from tokenshare.sinks.query import run_query
from tokenshare.streams.shares.config import load_rules
from tokenshare.streams.shares.engine import same_findings
from tokenshare.streams.topics import ensure_topics, group_lag
from tokenshare.watermark import event_time_reached, read_progress

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
        # The share stage evaluates after each stored flush (a notice on the
        # rollup-changes topic, read by the worker's Faust agent): wait until it has
        # taken every notice, then for its last alerts to reach the feed.
        wait_until(
            lambda: group_lag(settings, settings.worker_id, settings.changes_topic) == 0,
            300,
            "the share stage to evaluate every stored flush",
        )
        _wait_last_windows(settings, feed)
        feed.stop()
        console.print(
            f"[green]{report.sent:,} events[/] through Kafka into ClickHouse in {elapsed:.1f}s "
            f"([bold]{report.sent / elapsed:,.0f} events/s[/] end to end); "
            f"{report.invalid:,} invalid events went to {settings.dlq_topic}"
        )
        _summary(settings)
        _crossovers(settings, feed.seen)
        _story(settings)
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


def _wait_last_windows(settings: Settings, feed: AlertFeed) -> None:
    """Until the last windows have closed and their alerts are stored and shown.

    The partitions that stopped first hold the watermark back until they count as
    idle; once the stored progress says the event time reached closes and begins the
    same windows as when every partition is idle (often at once), every partition of
    the changes topic gets a recheck notice, so the share stage evaluates that now
    instead of on its own timer. Once it has taken them all and the store has every
    alert, nothing more can fire."""
    rules = load_rules(settings.rules_file)
    db = settings.clickhouse_database

    def closed() -> bool:
        progress = read_progress(lambda sql: run_query(settings, sql).rows, db)
        reached = event_time_reached(progress, rules.idle_partition_seconds)
        if reached is None:
            return False
        # When every partition is idle, the greatest event time counts.
        return same_findings(rules, reached, max(p.max_ts for p in progress))

    idle_s = rules.idle_partition_seconds
    wait_until(closed, idle_s + 120, "the partitions that stopped first to count as idle", 1.0)
    _recheck(settings)

    def settled() -> bool:
        return (
            group_lag(settings, settings.worker_id, settings.changes_topic) == 0
            and group_lag(settings, settings.store_group, settings.alerts_topic) == 0
            and feed.quiet_for(1.0)
        )

    wait_until(settled, 300, "the share stage to evaluate the last windows", 1.0)


def _recheck(settings: Settings) -> None:
    """A recheck notice on every partition of the changes topic (one flush id: one read)."""
    producer = kafka_clients.producer(settings)
    try:
        notice = RollupChange(reason="recheck", flush=f"demo-{uuid.uuid4().hex[:12]}")
        topic = settings.changes_topic
        partitions = sorted(producer.partitions_for(topic))  # waits for metadata
        sends = [
            producer.send(
                topic,
                value=notice.encode(),
                key=RollupChange.key_of(p, len(partitions)),
                partition=p,
            )
            for p in partitions
        ]
        producer.flush(timeout=30)
        for send in sends:
            send.get(timeout=30)
    finally:
        producer.close(timeout=30)


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


# --- the market's story ---------------------------------------------------------------

WEEKLY_STORY = """
SELECT toMonday(day) AS week,
       sum(total_tokens) AS tokens,
       sumIf(total_tokens, origin_bloc = 'China') AS china,
       sumIf(total_tokens, origin_bloc = 'US') AS us,
       sumIf(total_tokens, reasoning_tokens > 0) AS reasoning,
       sumIf(total_tokens, category = 'programming') AS programming,
       sumIf(total_tokens, weights = 'open') AS open,
       sumIf(cost_usd, startsWith(ifNull(region, ''), 'ap-')) AS asia_spend,
       sum(cost_usd) AS spend,
       sumIf(total_tokens, tool_calls > 0) AS tools,
       sum(prompt_tokens) / count() AS prompt_per_request
FROM {db}.raw_events GROUP BY week ORDER BY week
"""

#: What the public reports say (OpenRouter and a16z, "State of AI", Dec 2025; press
#: reports on the 2026 China/US crossover), beside each milestone of the replay.
REPORTS = {
    "china": "first China > US week: 9-15 Feb 2026 (China 4.12T vs US 2.94T tokens)",
    "reversal": "the lead changes hands again later in the series",
    "reasoning": "reasoning models: near 0 (start of 2025) -> over 50% of tokens",
    "open": "open weights ~33% of tokens by end of 2025",
    "programming": "programming ~11% (2024) -> over 50% of tokens (mid-2026)",
    "asia": "Asia's share of spend ~13% -> ~31%",
    "prompt": "average prompt ~1.5K -> over 6K tokens per request",
    "tools": "requests with tool calls carry a stable ~15% of tokens",
}


def _iso(week: object) -> str:
    year, number, _ = date.fromisoformat(str(week)[:10]).isocalendar()
    return f"{year}-W{number:02d}"


def _first(rows: list[dict[str, float]], test: Callable[[dict[str, float]], bool]) -> int | None:
    return next((i for i, r in enumerate(rows) if test(r)), None)


def _story(settings: Settings) -> None:
    """Each milestone of the replay with the week it appeared, beside the reports."""
    result = run_query(settings, WEEKLY_STORY.format(db=settings.clickhouse_database))
    rows = [dict(zip(result.columns, (float(x) if i else x for i, x in enumerate(r)), strict=True))
            for r in result.rows]  # fmt: skip
    rows = [r for r in rows if r["tokens"]]
    if not rows:
        return
    weeks = [_iso(r["week"]) for r in rows]
    table = Table(title="The market's story: milestones of the replay, beside the reports")
    for name in ("milestone", "week", "replay", "reports"):
        table.add_column(name, overflow="fold")

    def share(r: dict[str, float], key: str, of: str = "tokens") -> float:
        return r[key] / r[of] if r[of] else 0.0

    def milestone(name: str, at: int | None, figure: Callable[[int], str], report: str) -> None:
        table.add_row(name, weeks[at] if at is not None else "not reached",
                      figure(at if at is not None else len(rows) - 1), REPORTS[report])  # fmt: skip

    leads = [r["china"] > r["us"] for r in rows]
    china = _first(rows, lambda r: r["china"] > r["us"])
    milestone("China-origin tokens overtake US-origin", china,
              lambda i: f"China {share(rows[i], 'china'):.1%} vs US {share(rows[i], 'us'):.1%}",
              "china")  # fmt: skip
    if china is not None:
        changes = [i for i in range(china + 1, len(rows)) if leads[i] != leads[i - 1]]
        table.add_row("the lead changes hands again", ", ".join(weeks[i] for i in changes) or "-",
                      f"{len(changes)} reversals after the first", REPORTS["reversal"])  # fmt: skip
    milestone("reasoning requests carry over half the tokens",
              _first(rows, lambda r: share(r, "reasoning") > 0.5),
              lambda i: f"{share(rows[0], 'reasoning'):.0%} -> {share(rows[i], 'reasoning'):.0%}",
              "reasoning")  # fmt: skip
    milestone("open-weight models pass a third of tokens",
              _first(rows, lambda r: share(r, "open") > 1 / 3),
              lambda i: f"{share(rows[i], 'open'):.1%}", "open")  # fmt: skip
    milestone("programming passes half of all tokens",
              _first(rows, lambda r: share(r, "programming") > 0.5),
              lambda i: f"{share(rows[0], 'programming'):.0%} -> "
              f"{share(rows[i], 'programming'):.0%}", "programming")  # fmt: skip
    milestone("Asia reaches 30% of spend",
              _first(rows, lambda r: share(r, "asia_spend", "spend") >= 0.3),
              lambda i: f"{share(rows[0], 'asia_spend', 'spend'):.0%} -> "
              f"{share(rows[i], 'asia_spend', 'spend'):.0%}", "asia")  # fmt: skip
    milestone("average prompt passes 6K tokens",
              _first(rows, lambda r: r["prompt_per_request"] > 6000),
              lambda i: f"{rows[0]['prompt_per_request']:,.0f} -> "
              f"{rows[i]['prompt_per_request']:,.0f}", "prompt")  # fmt: skip
    tools = [share(r, "tools") for r in rows]
    table.add_row("tool-call share, every week", f"{weeks[0]}..{weeks[-1]}",
                  f"{min(tools):.0%}-{max(tools):.0%}", REPORTS["tools"])  # fmt: skip
    console.print(table)
