"""The dashboard's snapshot on real weekly figures in the test process's embedded
ClickHouse: shares, crossover marks, movers, totals and catalog gaps are checked
against an independent computation from the weekly files or the events."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from tests.factories import unique
from tests.weekly import WEEKLY, expected_final, rules_file, source_shares
from tokenshare.analysts.queries import Query
from tokenshare.dashboard.snapshot import View, build, catalog_gaps, movers, totals
from tokenshare.producers.weekly_replay import load_week_totals, replay_events
from tokenshare.schema.catalog import Catalog
from tokenshare.schema.outputs import AlertMessage
from tokenshare.schema.wire import encode
from tokenshare.sinks.clickhouse import migrate
from tokenshare.sinks.raw_events import RawEventWriter
from tokenshare.sinks.share_tables import write_alerts, write_snapshots
from tokenshare.streams.batch import Enricher, SourceMessage
from tokenshare.streams.shares.config import load_rules
from tokenshare.streams.shares.engine import ShareEngine, load_day_sums

Event = dict[str, Any]
ALL_WEEKS = View(weeks=520)


def iso_label(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


@pytest.fixture(scope="module")
def events() -> list[Event]:
    return list(replay_events(load_week_totals(WEEKLY)))


@pytest.fixture(scope="module")
def market(
    ch_client: Client, events: list[Event], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Every event stored as the store writes them, and the share stage's alerts under
    the crossover rule tests/weekly.py recomputes independently."""
    database = unique("dash_")
    migrate(ch_client, database)
    messages = [
        SourceMessage("events", 0, offset, encode(events[start : start + 500]))
        for offset, start in enumerate(range(0, len(events), 500))
    ]
    RawEventWriter(ch_client, database).write(
        Enricher(Catalog.load(), 1 << 20).process(messages).rows
    )
    rules = load_rules(rules_file(Path(tmp_path_factory.mktemp("rules"))))
    sums = load_day_sums(lambda sql: ch_client.query(sql).result_rows, database)
    result = ShareEngine(rules).tick(sums, now=datetime(2026, 6, 1, tzinfo=UTC))
    write_alerts(ch_client, database, [a.message() for a in result.alerts])
    write_snapshots(ch_client, database, result.snapshots)
    yield database
    ch_client.command(f"DROP DATABASE {database}")


@pytest.fixture
def query(ch_client: Client) -> Query:
    return lambda sql, params: ch_client.query(sql, parameters=params).result_rows


def test_shares_and_crossover_marks_equal_the_weekly_files(market: str, query: Query) -> None:
    snap = build(query, market, ALL_WEEKS)
    source = source_shares()
    assert [iso_label(p) for p in snap.periods] == sorted(source)
    series = {s.value: s.shares for s in snap.series}
    for i, period in enumerate(snap.periods):
        china, us = source[iso_label(period)]
        assert series["China"][i] == pytest.approx(china, abs=1e-6)
        assert series["US"][i] == pytest.approx(us, abs=1e-6)
    assert "unidentified" not in series  # identified traffic by default
    # Closed weeks' crossovers are marked on their week, as the recomputation finds them.
    final = [(m.label, f"{m.leader}>{m.overtaken}") for m in snap.crossovers if m.status == "final"]
    assert final == expected_final()
    assert expected_final(), "the weekly files hold crossovers to mark"
    for mark in snap.crossovers:
        assert iso_label(mark.period) == mark.label and mark.period.weekday() == 0
    # Nothing marks a view the rule does not cover.
    assert build(query, market, View(dimension="weights", weeks=520)).crossovers == []


def crafted(start: date, subject: str) -> AlertMessage:
    leader, overtaken = subject.split(">")
    return AlertMessage(
        alert_id=unique("crafted-"),
        rule="crossover",
        status="provisional",
        dimension="origin_bloc",
        measure="tokens",
        subject=subject,
        text=f"crafted {subject}",
        details={"leader": leader, "overtaken": overtaken, "margin_pp": 0.5},
        window_kind="iso_week",
        window_start=start,
        window_end=start + timedelta(days=7),
        window_label=iso_label(start),
    )


def test_provisional_marks_only_for_windows_still_open(
    ch_client: Client, market: str, query: Query
) -> None:
    """A provisional crossover of a window that closed without it is not marked; one of
    the open window is. (Crafted alerts, removed again: the module shares the data.)"""
    periods = build(query, market, ALL_WEEKS).periods
    open_week, closed_week = periods[-1], periods[-2]  # the newest week is still open
    alerts = [crafted(closed_week, "US>China"), crafted(open_week, "US>China")]
    write_alerts(ch_client, market, alerts)
    try:
        shown = build(query, market, ALL_WEEKS).crossovers
    finally:
        ids = [a.alert_id for a in alerts]
        ch_client.command(
            f"DELETE FROM {market}.alerts WHERE alert_id IN {{ids:Array(String)}}",
            parameters={"ids": ids},
        )
    provisional = [(m.period, m.leader, m.status) for m in shown if m.status == "provisional"]
    assert provisional == [(open_week, "US", "provisional")]


def test_movers_are_the_largest_changes_of_the_last_two_weeks(market: str, query: Query) -> None:
    snap = build(query, market, ALL_WEEKS)
    source = source_shares()
    last, before = sorted(source)[-1], sorted(source)[-2]
    moved = {m.value: m for m in snap.movers}
    for i, value in enumerate(("China", "US")):
        assert moved[value].share == pytest.approx(source[last][i], abs=1e-6)
        assert moved[value].change_pp == pytest.approx(
            (source[last][i] - source[before][i]) * 100, abs=1e-4
        )
    changes = [abs(m.change_pp) for m in snap.movers]
    assert changes == sorted(changes, reverse=True)


def test_totals_and_catalog_gaps_equal_the_events(
    market: str, query: Query, events: list[Event]
) -> None:
    catalog = Catalog.load()
    tokens = sum(int(e["prompt_tokens"]) + int(e["completion_tokens"]) for e in events)
    got = totals(query, market)
    assert (got.events, got.tokens) == (len(events), tokens)
    assert got.latest_event is not None and got.latest_event.startswith(
        max(e["ts"] for e in events)[:10]
    )
    # Independently: the slugs the catalog cannot place, with their traffic.
    gaps: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for e in events:
        if not catalog.lookup(str(e["model"])).identified:
            gaps[str(e["model"])][0] += 1
            gaps[str(e["model"])][1] += int(e["prompt_tokens"]) + int(e["completion_tokens"])
    assert gaps, "the weekly files hold models the catalog does not know"
    assert got.unidentified_events == sum(n for n, _ in gaps.values())
    expected = sorted(gaps.items(), key=lambda kv: (-kv[1][1], kv[0]))[:10]
    found = catalog_gaps(query, market)
    assert [(g.model, g.requests, g.tokens) for g in found] == [(m, n, t) for m, (n, t) in expected]
    assert [g.share for g in found] == pytest.approx([t / tokens for _, (_, t) in expected])


def test_rolling_view_places_marks_on_the_windows_last_day(market: str, query: Query) -> None:
    snap = build(query, market, View(window="rolling_7d", weeks=520))
    assert snap.periods and snap.series
    latest = snap.periods[-1]
    assert all((latest - p).days % 7 == 0 for p in snap.periods)
    assert snap.crossovers == []  # the rule evaluates ISO weeks only


def test_json_document(market: str, query: Query) -> None:
    doc = orjson.loads(build(query, market, ALL_WEEKS).to_json())
    assert doc["view"] == {
        "dimension": "origin_bloc",
        "measure": "tokens",
        "window": "iso_week",
        "identified": True,
        "weeks": 520,
    }
    assert date.fromisoformat(doc["periods"][0]) < date.fromisoformat(doc["periods"][-1])
    assert {"value", "share", "previous", "change_pp"} == set(doc["movers"][0])
    assert {"period", "label", "leader", "overtaken", "status", "margin_pp"} == set(
        doc["crossovers"][0]
    )
    assert doc["alerts"] and {"rule", "status", "text", "window_label"} <= set(doc["alerts"][0])


def test_view_takes_only_the_vocabulary() -> None:
    assert View.parse({}) == View()
    view = View.parse({"dimension": "author", "measure": "spend_usd", "window": "rolling_7d"})
    assert (view.dimension, view.measure, view.window) == ("author", "spend_usd", "rolling_7d")
    assert not View.parse({"identified": "0"}).identified
    for bad, named in [
        ({"dimension": "x; DROP TABLE raw_events"}, "origin_bloc"),
        ({"measure": "cost"}, "spend_usd"),
        ({"window": "hourly"}, "rolling_7d"),
        ({"weeks": "0"}, "1 to 520"),
        ({"weeks": "ten"}, "1 to 520"),
    ]:
        with pytest.raises(ValueError, match=named):
            View.parse(bad)


def test_movers_need_two_periods() -> None:
    from tokenshare.analysts.queries import SharePoint, ShareTable

    one = ShareTable.pivot([SharePoint(date(2026, 2, 9), "China", 0.6)])
    assert movers(one) == []
    two = ShareTable.pivot(
        [
            SharePoint(date(2026, 2, 2), "China", 0.4),
            SharePoint(date(2026, 2, 9), "China", 0.6),
            SharePoint(date(2026, 2, 2), "US", 0.6),
            SharePoint(date(2026, 2, 9) - timedelta(days=0), "US", 0.4),
        ]
    )
    assert [(m.value, round(m.change_pp, 6)) for m in movers(two)] == [
        ("China", 20.0),
        ("US", -20.0),
    ]
