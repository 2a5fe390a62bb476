"""The ClickHouse tables and views against the vocabulary (``schema.vocabulary``).

The migrations spell dimensions, measures, window kinds, statuses and rule
names in SQL; these tests store real rows and alerts in the embedded engine
and check that what the tables and views hold is exactly what the vocabulary
names, so a name added, renamed or dropped in one place only fails here.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from itertools import product
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from tests.factories import event
from tokenshare.analysts import queries
from tokenshare.schema.catalog import UNIDENTIFIED, Catalog
from tokenshare.schema.event import TokenEvent
from tokenshare.schema.outputs import AlertMessage, ShareSnapshot, ShareValue, Window
from tokenshare.schema.rows import ROW_COLUMNS
from tokenshare.schema.vocabulary import (
    ANALYST_MEASURES,
    DIMENSION_COLUMNS,
    DIMENSIONS,
    MEASURES,
    REQUEST_DIMENSIONS,
    RULES,
    SHARE_COLUMNS,
    STATUSES,
    WINDOW_KINDS,
)
from tokenshare.schema.wire import encode
from tokenshare.sinks.clickhouse import migrate
from tokenshare.sinks.raw_events import RawEventWriter
from tokenshare.sinks.share_tables import write_alerts, write_snapshots
from tokenshare.streams.batch import Enricher, SourceMessage
from tokenshare.streams.shares.engine import load_day_sums

#: Each measure computed from raw_events, written out independently of the rollup.
MEASURE_SQL = {
    "tokens": "sum(prompt_tokens + completion_tokens)",
    "prompt_tokens": "sum(prompt_tokens)",
    "completion_tokens": "sum(completion_tokens)",
    "requests": "count()",
    "spend_usd": "sum(cost_usd)",
}
#: Columns of the share views that are neither a key nor a measure's total or share.
KEYS = {"dimension", "value", "week", "window_end"}
IDENTIFIED_SHARES = {"token_share_identified"}
WEEK = Window.iso_week(date(2026, 2, 11))
ROLLING = Window(date(2026, 2, 5), date(2026, 2, 12), "rolling_7d")
WINDOWS = {"iso_week": WEEK, "rolling_7d": ROLLING, "month": Window.month(date(2026, 2, 11))}


@pytest.fixture
def stored(ch_client: Client, database: str) -> str:
    """`database` migrated, holding enriched events (some without the optional
    request fields) the way the store writes them."""
    migrate(ch_client, database)
    events = [
        event(i, **({"category": None, "region": None, "language": None} if i % 7 == 0 else {}))
        for i in range(120)
    ]
    batches = Enricher(Catalog.load(), 1 << 20).process(
        [SourceMessage("events", 0, 0, encode(events))]
    )
    assert RawEventWriter(ch_client, database).write(batches.rows) == len(events)
    return database


def run(ch_client: Client, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in ch_client.query(sql, parameters=params).result_rows]


def columns(ch_client: Client, database: str, table: str) -> dict[str, str]:
    """Column name -> comment."""
    rows = run(
        ch_client,
        "SELECT name, comment FROM system.columns "
        "WHERE database = {db:String} AND table = {table:String}",
        db=database,
        table=table,
    )
    assert rows, f"no table or view {database}.{table}"
    return dict(rows)


def distinct(ch_client: Client, sql: str, **params: Any) -> set[Any]:
    return {row[0] for row in run(ch_client, sql, **params)}


# --- dimensions ------------------------------------------------------------------------


def test_every_dimension_is_an_enriched_column_the_worker_fills() -> None:
    assert set(DIMENSION_COLUMNS) == set(DIMENSIONS)
    assert set(DIMENSION_COLUMNS.values()) <= set(ROW_COLUMNS)
    assert set(REQUEST_DIMENSIONS) <= set(TokenEvent.model_fields)


def test_the_rollup_and_views_group_by_exactly_the_dimensions(
    ch_client: Client, stored: str
) -> None:
    raw = columns(ch_client, stored, "raw_events")
    missing = set(DIMENSION_COLUMNS.values()) - raw.keys()
    assert not missing, f"dimension columns missing from raw_events: {missing}"
    for view in ("daily_rollup", "weekly_shares", "rolling_shares", "weekly_concentration"):
        found = distinct(ch_client, f"SELECT DISTINCT dimension FROM {stored}.{view}")
        assert found == set(DIMENSIONS), f"{view}: {found ^ set(DIMENSIONS)}"
    # Each dimension's values are those of its raw_events column (missing = unidentified).
    for dimension, column in DIMENSION_COLUMNS.items():
        rolled = distinct(
            ch_client,
            f"SELECT DISTINCT value FROM {stored}.daily_rollup WHERE dimension = {{d:String}}",
            d=dimension,
        )
        raw_values = distinct(
            ch_client,
            f"SELECT DISTINCT ifNull(toString({column}), {{u:String}}) FROM {stored}.raw_events",
            u=UNIDENTIFIED,
        )
        assert rolled == raw_values, dimension


# --- measures ----------------------------------------------------------------------------


def test_measures_are_the_rollup_sums_and_the_share_view_totals(
    ch_client: Client, stored: str
) -> None:
    assert set(MEASURE_SQL) == set(MEASURES), "MEASURE_SQL must cover every measure"
    assert set(MEASURES) <= columns(ch_client, stored, "daily_rollup").keys()
    views = {"weekly_shares": set(MEASURES), "rolling_shares": set(ANALYST_MEASURES)}
    for view, totals in views.items():
        names = columns(ch_client, stored, view).keys() - KEYS - IDENTIFIED_SHARES
        shares = {n for n in names if n.endswith("_share")}
        assert shares == set(SHARE_COLUMNS.values()), view
        assert names - shares == totals, view
    # The share stage reads one sum per measure, in MEASURES order, and gets the
    # raw totals (every dimension partitions all traffic, so any one will do).
    sums = load_day_sums(lambda sql: ch_client.query(sql).result_rows, stored)
    by_day = [cell for by_value in sums.cells["origin_bloc"].values() for cell in by_value.values()]
    expected = run(
        ch_client,
        f"SELECT {', '.join(MEASURE_SQL[m] for m in MEASURES)} FROM {stored}.raw_events",
    )[0]
    for i, measure in enumerate(MEASURES):
        assert sum(cell[i] for cell in by_day) == pytest.approx(expected[i]), measure


def test_every_analyst_measure_shares_out_its_own_total(ch_client: Client, stored: str) -> None:
    def query(sql: str, params: dict[str, Any]) -> list[Any]:
        return list(ch_client.query(sql, parameters=params).result_rows)

    for measure in ANALYST_MEASURES:
        top = queries.top_values(query, stored, "origin_bloc", measure=measure, weeks=520)
        (total,) = run(ch_client, f"SELECT {MEASURE_SQL[measure]} FROM {stored}.raw_events")[0]
        assert sum(v.total for v in top) == pytest.approx(total), measure
        points = queries.weekly_shares(query, stored, "origin_bloc", measure=measure, weeks=None)
        for period in {p.period for p in points}:
            shares = [p.share for p in points if p.period == period]
            assert sum(shares) == pytest.approx(1.0), (measure, period)


# --- window kinds, statuses, rules --------------------------------------------------------


def listed(comment: str) -> tuple[str, ...]:
    """'a | b | c' -> ("a", "b", "c")."""
    return tuple(part.strip() for part in comment.split("|"))


def test_alerts_table_documents_the_window_kinds_and_statuses(
    ch_client: Client, database: str
) -> None:
    migrate(ch_client, database)
    table = columns(ch_client, database, "alerts")
    assert listed(table["status"]) == STATUSES
    assert listed(table["window_kind"]) == WINDOW_KINDS


def alert(rule: str, status: str, kind: str) -> AlertMessage:
    return AlertMessage.model_validate(
        {
            "alert_id": f"{rule}-{status}-{kind}",
            "rule": rule,
            "status": status,
            "dimension": "origin_bloc",
            "measure": "tokens",
            "window_kind": kind,
            "window_start": WINDOWS[kind].start,
            "window_end": WINDOWS[kind].end,
            "window_label": WINDOWS[kind].label,
            "subject": "China>US",
            "text": f"{rule} {status} {kind}",
            "details": {"leader": "China", "overtaken": "US", "margin_pp": 1.0},
        }
    )


def test_every_rule_status_and_window_kind_is_stored_and_queried(
    ch_client: Client, database: str
) -> None:
    migrate(ch_client, database)
    written = [alert(*combo) for combo in product(RULES, STATUSES, WINDOW_KINDS)]
    write_alerts(ch_client, database, written)
    stored = run(
        ch_client, f"SELECT rule, status, window_kind, window_label FROM {database}.alerts FINAL"
    )
    assert sorted(stored) == sorted(
        (a.rule, a.status, a.window_kind, a.window_label) for a in written
    )

    def query(sql: str, params: dict[str, Any]) -> list[Any]:
        return list(ch_client.query(sql, parameters=params).result_rows)

    for rule, status in product(RULES, STATUSES):
        found = queries.alerts(query, database, rule=rule, status=status)
        assert sorted(a.text for a in found) == sorted(
            a.text for a in written if (a.rule, a.status) == (rule, status)
        )
    # The crossovers view picks the crossover rule's alerts, by the vocabulary's name.
    for status, kind in product(STATUSES, WINDOW_KINDS):
        (found,) = queries.crossovers(query, database, status=status, window_kind=kind)
        assert (found.status, found.window_kind, found.leader) == (status, kind, "China")
        assert found.text == f"crossover {status} {kind}"


def test_every_window_kind_and_measure_is_a_share_snapshot(
    ch_client: Client, database: str
) -> None:
    migrate(ch_client, database)
    now = datetime(2026, 2, 20, tzinfo=UTC)
    written = [
        ShareSnapshot.about(
            WINDOWS[kind],
            dimension=dimension,
            measure=measure,
            final=True,
            computed_at=now,
            values=[ShareValue(value="China", total=3.0, share=0.75, share_identified=1.0)],
        )
        for kind, dimension, measure in product(WINDOW_KINDS, DIMENSIONS, MEASURES)
    ]
    write_snapshots(ch_client, database, written)
    stored = run(
        ch_client,
        "SELECT window_kind, window_start, dimension, measure, share "
        f"FROM {database}.share_snapshots FINAL",
    )
    assert sorted(stored) == sorted(
        (s.window_kind, s.window_start, s.dimension, s.measure, 0.75) for s in written
    )


def test_a_name_outside_the_vocabulary_breaks_the_contract() -> None:
    good = alert("crossover", "final", "iso_week").model_dump()
    for field, bad in [
        ("rule", "crossing"),
        ("status", "closed"),
        ("window_kind", "monthly"),
        ("dimension", "country"),
        ("measure", "spend"),
    ]:
        with pytest.raises(ValueError, match=re.escape(field)):
            AlertMessage.model_validate({**good, field: bad})
