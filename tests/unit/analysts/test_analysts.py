"""Analyst queries, plots and commands on real weekly figures in the test process's
embedded ClickHouse: every result is checked against an independent computation
from the weekly files or the events themselves."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from clickhouse_connect.driver.client import Client

from tests.factories import unique
from tests.weekly import CHINA, US, WEEKLY
from tokenshare.analysts import queries
from tokenshare.analysts.plots import (
    FROM_SHARES,
    FROM_VIEW,
    plot_concentration,
    plot_retention,
    plot_shares,
)
from tokenshare.cli.analyst import sparkline
from tokenshare.cli.main import main
from tokenshare.producers.weekly_replay import load_week_totals, replay_events
from tokenshare.schema.catalog import Catalog
from tokenshare.schema.wire import encode
from tokenshare.sinks.clickhouse import migrate
from tokenshare.sinks.query import QueryResult
from tokenshare.sinks.raw_events import RawEventWriter
from tokenshare.sinks.share_tables import write_alerts
from tokenshare.streams.batch import Enricher, SourceMessage
from tokenshare.streams.shares.config import load_rules
from tokenshare.streams.shares.engine import ShareEngine, load_day_sums

Event = dict[str, Any]
CATALOG = Catalog.load()
MODEL = "deepseek/deepseek-v3.2"  # the model the test gives apps and users to
CROSSOVER_WEEK = date(2026, 2, 9)  # ISO week 2026-W07: China first out-tokens the US
PNG = b"\x89PNG\r\n\x1a\n"


def monday(ts: str) -> date:
    day = datetime.fromisoformat(ts.replace("Z", "+00:00")).date()
    return day - timedelta(days=day.weekday())


def market_events() -> list[Event]:
    """The replayed weekly figures; MODEL's events carry apps (new ones join over time,
    recent ones are reused more) and users, and some other events carry an app too."""
    rng = random.Random(42)
    apps: list[str] = []
    events = list(replay_events(load_week_totals(WEEKLY)))
    for i, e in enumerate(events):
        if CATALOG.lookup(str(e["model"])).model == MODEL:
            if not apps or rng.random() < 0.3:
                apps.append(f"app-{len(apps)}")
            e["app_id"] = rng.choice(apps[-6:] if rng.random() < 0.7 else apps)
            e["user_id"] = f"user-{rng.randrange(40)}"
        elif i % 5 == 0:
            e["app_id"] = f"other-app-{i % 7}"
    return events


@pytest.fixture(scope="module")
def events() -> list[Event]:
    return market_events()


@pytest.fixture(scope="module")
def stored(ch_client: Client, events: list[Event]) -> Iterator[str]:
    """A migrated database holding every event, the way the store writes them; made once
    for the module (the queries only read it)."""
    database = unique("market_")
    migrate(ch_client, database)
    messages = [
        SourceMessage("events", 0, offset, encode(events[start : start + 500]))
        for offset, start in enumerate(range(0, len(events), 500))
    ]
    RawEventWriter(ch_client, database).write(Enricher(CATALOG, 1 << 20).process(messages).rows)
    yield database
    ch_client.command(f"DROP DATABASE {database}")


@pytest.fixture
def market(ch_client: Client, stored: str) -> str:
    """The stored events without the share stage's output: a test that runs the share
    stage (store_alerts) finds only its own alerts, as on a database of its own."""
    for table in ("alerts", "share_snapshots"):
        ch_client.command(f"TRUNCATE TABLE {stored}.{table}")
    return stored


@pytest.fixture
def query(ch_client: Client) -> queries.Query:
    return lambda sql, params: ch_client.query(sql, parameters=params).result_rows


# --- the independent side: the weekly files and the events -------------------------


def file_shares(known_only: bool) -> dict[date, tuple[float, float]]:
    """ISO week -> (China share, US share) of tokens, straight from the weekly files
    (known_only: among models the catalog can place, i.e. not openrouter/ stealth ones)."""
    out = {}
    for path in sorted(WEEKLY.glob("*.json")):
        doc = orjson.loads(path.read_bytes())
        day = date.fromisoformat(doc["date"]) - timedelta(days=1)
        models = doc["models"]
        if known_only:
            models = [m for m in models if not m["slug"].startswith("openrouter/")]
        total = sum(m["total_tokens"] for m in models)
        china = sum(m["total_tokens"] for m in models if m["slug"].split("/")[0] in CHINA)
        us = sum(m["total_tokens"] for m in models if m["slug"].split("/")[0] in US)
        out[day - timedelta(days=day.weekday())] = (china / total, us / total)
    return out


def expected_retention(events: list[Event]) -> dict[date, dict[int, int]]:
    """cohort week -> weeks after -> apps of MODEL active, from the events."""
    weeks: dict[str, set[date]] = defaultdict(set)
    for e in events:
        if e.get("app_id") and CATALOG.lookup(str(e["model"])).model == MODEL:
            weeks[str(e["app_id"])].add(monday(str(e["ts"])))
    out: dict[date, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for active in weeks.values():
        cohort = min(active)
        for week in active:
            out[cohort][(week - cohort).days // 7] += 1
    return out


# --- queries -----------------------------------------------------------------------


def test_weekly_shares_equal_the_weekly_files(market: str, query: queries.Query) -> None:
    for known_only in (True, False):
        expected = file_shares(known_only)
        points = queries.weekly_shares(
            query, market, "origin_bloc", weeks=None, exclude_unidentified=known_only
        )
        got = {(p.period, p.value): p.share for p in points}
        assert {p.period for p in points} == set(expected)
        for week, (china, us) in expected.items():
            assert got.get((week, "China"), 0.0) == pytest.approx(china, abs=1e-6), week
            assert got.get((week, "US"), 0.0) == pytest.approx(us, abs=1e-6), week
        if known_only:
            assert "unidentified" not in {p.value for p in points}
    last = queries.weekly_shares(query, market, "origin_bloc", weeks=12)
    assert sorted({p.period for p in last}) == sorted(expected)[-12:]
    # Each snapshot sits in exactly one 7-day window, so rolling windows give the same shares.
    rolling = queries.weekly_shares(query, market, "origin_bloc", weeks=3, rolling=True)
    table = queries.ShareTable.pivot(rolling)
    assert len(table.periods) == 3
    latest = sorted(expected)[-1]
    assert table.shares["China"][-1] == pytest.approx(expected[latest][0], abs=1e-6)


def test_top_values_and_concentration_equal_the_events(
    market: str, query: queries.Query, events: list[Event]
) -> None:
    last_week = max(monday(str(e["ts"])) for e in events)
    tokens: dict[str, int] = defaultdict(int)
    for e in events:
        if monday(str(e["ts"])) == last_week:
            model = CATALOG.lookup(str(e["model"])).model
            tokens[model] += int(e["prompt_tokens"]) + int(e["completion_tokens"])
    total = sum(tokens.values())
    ranked = sorted(tokens.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    top = queries.top_values(query, market, "model", weeks=1, limit=5)
    assert [(t.value, t.total) for t in top] == [(m, float(n)) for m, n in ranked]
    assert [t.share for t in top] == pytest.approx([n / total for _, n in ranked])

    known = {m: n for m, n in tokens.items() if not m.startswith("openrouter/")}
    shares = [n / total for n in known.values()]
    point = queries.concentration(query, market, "model", weeks=1)[-1]
    assert point.week == last_week
    assert point.top1_value == max(known, key=lambda m: known[m])
    assert point.top1_share == pytest.approx(max(shares))
    assert point.hhi == pytest.approx(sum(s * s for s in shares))


def test_retention_matrix_equals_the_events(
    market: str, query: queries.Query, events: list[Event]
) -> None:
    expected = expected_retention(events)
    matrix = queries.retention(query, market, MODEL)
    assert matrix.cohort_sizes == {c: row[0] for c, row in sorted(expected.items())}
    assert matrix.cells == {
        (c, after): (n, n / row[0]) for c, row in expected.items() for after, n in row.items()
    }
    followed = queries.retention(query, market, MODEL, weeks=2)
    assert max(after for _, after in followed.cells) == 2
    users = queries.retention(query, market, MODEL, members="users")
    assert sum(users.cohort_sizes.values()) == len(
        {e["user_id"] for e in events if e.get("user_id")}
    )


def test_alerts_and_crossovers_read_what_the_share_stage_stored(
    ch_client: Client, market: str, query: queries.Query
) -> None:
    store_alerts(ch_client, market)
    final = queries.crossovers(
        query, market, dimension="origin_bloc", status="final", window_kind="iso_week"
    )
    assert (final[0].window_start, final[0].leader, final[0].overtaken) == (
        CROSSOVER_WEEK,
        "China",
        "US",
    )
    assert all(c.status == "final" and c.dimension == "origin_bloc" for c in final)
    thresholds = queries.alerts(query, market, rule="threshold", limit=5)
    assert thresholds and len(thresholds) <= 5
    assert all(a.rule == "threshold" for a in thresholds)
    newest = queries.alerts(query, market, limit=1000)
    starts = [a.window_start for a in newest]
    assert starts == sorted(starts, reverse=True)


def store_alerts(ch_client: Client, database: str) -> None:
    """Run the share stage (shipped rules) over the stored sums; store its alerts."""
    sums = load_day_sums(lambda sql: ch_client.query(sql).result_rows, database)
    result = ShareEngine(load_rules()).tick(sums, now=datetime(2026, 6, 1, tzinfo=UTC))
    write_alerts(ch_client, database, [a.message() for a in result.alerts])


def test_identifiers_come_from_allowlists_only() -> None:
    def never(sql: str, params: dict[str, Any]) -> list[list[Any]]:
        raise AssertionError(f"no SQL may run: {sql}")

    evil = "x; DROP TABLE raw_events"
    refusals = [
        (lambda: queries.weekly_shares(never, "db", evil), "origin_bloc"),
        (lambda: queries.weekly_shares(never, "db", "model", measure=evil), "requests"),
        (lambda: queries.weekly_shares(never, evil, "model"), "database"),
        (lambda: queries.top_values(never, "db", evil), "origin_bloc"),
        (lambda: queries.concentration(never, "db", evil), "origin_bloc"),
        (lambda: queries.crossovers(never, "db", dimension=evil), "origin_bloc"),
        (lambda: queries.crossovers(never, "db", status=evil), "provisional"),
        (lambda: queries.alerts(never, "db", rule=evil), "crossover"),
        (lambda: queries.retention(never, "db", MODEL, members=evil), "apps, users"),
        (lambda: queries.weekly_shares(never, "db", "model", weeks=0), "at least 1"),
    ]
    for call, named in refusals:
        with pytest.raises(ValueError, match=r"not allowed|at least 1") as refused:
            call()
        assert named in str(refused.value)


def test_values_are_bound_not_formatted(market: str, query: queries.Query) -> None:
    quoted = "x' OR 1=1 --"
    assert queries.retention(query, market, quoted).cells == {}
    seen: list[dict[str, Any]] = []

    def spy(sql: str, params: dict[str, Any]) -> Any:
        seen.append(params)
        assert quoted not in sql
        return query(sql, params)

    queries.crossovers(spy, market, dimension="model", status="final")
    assert seen[-1] == {"dimension": "model", "status": "final", "limit": 1000}


# --- plots -------------------------------------------------------------------------


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG
    assert len(data) > 20_000, "a chart with lines, labels and a legend"


def test_plot_shares_marks_china_over_us_from_the_shares(
    market: str, query: queries.Query, tmp_path: Path
) -> None:
    points = queries.weekly_shares(query, market, "origin_bloc", weeks=None)
    marks = queries.crossovers(query, market, dimension="origin_bloc", status="final")
    assert marks == []  # no share stage ran: the plot finds the leader changes itself
    out = tmp_path / "shares.png"
    info = plot_shares(points, "origin_bloc", out, "line", marks)
    assert_png(out)
    assert info.crossover_source == FROM_SHARES
    assert (CROSSOVER_WEEK, "China > US") in info.annotations
    assert info.annotations[0] == (CROSSOVER_WEEK, "China > US")
    expected = file_shares(known_only=False)
    assert dict(info.series["China"]) == pytest.approx({w: c for w, (c, _) in expected.items()})
    stacked = plot_shares(points, "origin_bloc", tmp_path / "stacked.png", "stacked", marks)
    assert_png(tmp_path / "stacked.png")
    assert stacked.annotations == info.annotations


def test_plot_shares_marks_the_crossovers_the_share_stage_stored(
    ch_client: Client, market: str, query: queries.Query, tmp_path: Path
) -> None:
    store_alerts(ch_client, market)
    points = queries.weekly_shares(query, market, "origin_bloc", weeks=None)
    marks = queries.crossovers(query, market, dimension="origin_bloc", status="final")
    info = plot_shares(points, "origin_bloc", tmp_path / "shares.png", "line", marks)
    assert_png(tmp_path / "shares.png")
    assert info.crossover_source == FROM_VIEW
    assert info.annotations[0] == (CROSSOVER_WEEK, "China > US")
    assert info.annotations == sorted(
        (c.window_start, f"{c.leader} > {c.overtaken}")
        for c in marks
        if c.window_kind == "iso_week" and c.measure == "tokens"
    )


def test_plot_concentration_and_retention(
    market: str, query: queries.Query, tmp_path: Path
) -> None:
    points = queries.concentration(query, market, "model")
    info = plot_concentration(points, "model", tmp_path / "c.png")
    assert_png(tmp_path / "c.png")
    assert [w for w, _ in info.series["top-1 share"]] == [p.week for p in points]
    assert info.reference_lines == [("25% top-1 level", 0.25)]
    matrix = queries.retention(query, market, MODEL)
    ret = plot_retention(matrix, tmp_path / "r.png", max_cohorts=4)
    assert_png(tmp_path / "r.png")
    assert len(ret.series) == 5  # the 4 largest cohorts and the weighted average
    assert all(curve[0] == (0, 1.0) for curve in ret.series.values())


# --- commands ----------------------------------------------------------------------


def test_help_of_the_commands() -> None:
    runner = CliRunner()
    for args in (["shares", "--help"], ["plot", "shares", "--help"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
        assert "Examples:" in result.output and "--by" in result.output
        assert "--exclude-unidentified" in result.output


@pytest.fixture
def cli_on_test_engine(ch_client: Client, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """The commands, with run_query answered by this process's engine (the commands
    against a running store are covered by the end-to-end tests)."""

    def run_query(
        settings: Any, sql: str, parameters: dict[str, Any] | None = None, **_: Any
    ) -> Any:
        result = ch_client.query(sql, parameters=parameters or {})
        return QueryResult(list(result.column_names), [], [list(r) for r in result.result_rows])

    monkeypatch.setattr("tokenshare.sinks.query.run_query", run_query)
    yield CliRunner()


def test_commands_print_tables_and_write_plots(
    cli_on_test_engine: CliRunner, market: str, tmp_path: Path
) -> None:
    env = {"TOKENSHARE_CLICKHOUSE_DATABASE": market, "COLUMNS": "200"}
    run = cli_on_test_engine.invoke
    shares = run(main, ["shares", "--by", "origin_bloc", "--weeks", "4"], env=env)
    assert shares.exit_code == 0, shares.output
    china, us = file_shares(known_only=False)[max(file_shares(known_only=False))]
    assert f"{china * 100:.1f}" in shares.output and f"{us * 100:.1f}" in shares.output
    assert any(c in shares.output for c in "▁▂▃▄▅▆▇█")
    out = tmp_path / "plot.png"
    plotted = run(main, ["plot", "shares", "--by", "origin_bloc", "-o", str(out)], env=env)
    assert plotted.exit_code == 0, plotted.output
    assert_png(out)
    assert "China > US" in plotted.output
    empty = run(main, ["crossovers"], env=env)
    assert empty.exit_code == 1
    assert "tokenshare demo" in empty.output


def test_sparkline_scales_from_zero_to_the_row_maximum() -> None:
    assert sparkline([0.0, 0.5, 1.0]) == "▁▅█"
    assert sparkline([0.0, 0.0]) == "▁▁"
    assert sparkline([]) == ""
