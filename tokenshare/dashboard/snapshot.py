"""What the dashboard shows, as one JSON-ready document per view (dimension, measure,
window kind): shares over time, the crossovers the share stage published for them,
top movers, the alert feed, catalog gaps and stream totals.

Shares, crossovers and alerts come from the analyst queries (``analysts.queries``),
so the page and ``tokenshare shares`` show the same numbers; only the totals and the
catalog gaps are read here. Every query goes through the ``query`` callable given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from tokenshare.analysts.queries import (
    Query,
    ShareTable,
    alerts,
    allowed,
    crossovers,
    database_name,
    weekly_shares,
)
from tokenshare.schema.vocabulary import ANALYST_MEASURES, DIMENSIONS, WindowKind

#: The window kinds the share views carry (a series per ISO week, or per rolling window).
WINDOWS: tuple[WindowKind, ...] = ("iso_week", "rolling_7d")

#: How many values the chart draws (the largest by peak share; the rest folded).
CHART_VALUES = 8
MOVERS = 8
ALERTS = 20
GAPS = 10


@dataclass(frozen=True, slots=True)
class View:
    """What the page asked for; every field is checked against the vocabulary."""

    dimension: str = "origin_bloc"
    measure: str = "tokens"
    window: str = "iso_week"
    identified: bool = True  # leave the unidentified bucket out of the shares
    weeks: int = 26

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> View:
        """From query-string arguments; a ValueError names the allowed values."""
        default = cls()
        weeks = args.get("weeks", str(default.weeks))
        if not weeks.isdigit() or not 1 <= int(weeks) <= 520:
            raise ValueError(f"weeks must be a whole number from 1 to 520, not {weeks!r}")
        return cls(
            dimension=allowed("dimension", args.get("dimension", default.dimension), DIMENSIONS),
            measure=allowed("measure", args.get("measure", default.measure), ANALYST_MEASURES),
            window=allowed("window", args.get("window", default.window), WINDOWS),
            identified=args.get("identified", "1") not in ("0", "false", "no"),
            weeks=int(weeks),
        )


@dataclass(frozen=True, slots=True)
class Series:
    value: str
    shares: list[float]  # one per period, 0..1


@dataclass(frozen=True, slots=True)
class CrossoverMark:
    """A published crossover placed on the chart's time axis (the window's period)."""

    period: date
    label: str
    leader: str
    overtaken: str
    status: str
    margin_pp: float


@dataclass(frozen=True, slots=True)
class Mover:
    """A value's share in the newest period against the one before it."""

    value: str
    share: float
    previous: float

    @property
    def change_pp(self) -> float:
        return (self.share - self.previous) * 100


@dataclass(frozen=True, slots=True)
class Gap:
    """A model slug, as the gateway sent it, that the catalog does not know."""

    model: str
    requests: int
    tokens: int
    share: float  # of all stored tokens


@dataclass(frozen=True, slots=True)
class Totals:
    events: int
    tokens: int
    spend_usd: float
    unidentified_events: int
    latest_event: str | None  # UTC, as ClickHouse prints it; None before any event


@dataclass(frozen=True, slots=True)
class Snapshot:
    view: View
    generated_at: datetime
    totals: Totals
    periods: list[date]
    series: list[Series]
    crossovers: list[CrossoverMark]
    movers: list[Mover]
    alerts: list[dict[str, Any]]
    gaps: list[Gap]

    def to_json(self) -> bytes:
        doc = asdict(self)
        doc["movers"] = [{**asdict(m), "change_pp": m.change_pp} for m in self.movers]
        return orjson.dumps(doc)


_TOTALS_SQL = """
SELECT count(), sum(total_tokens), sum(cost_usd), countIf(NOT identified),
       if(count() > 0, toString(max(ts)), '')
FROM $db.raw_events
"""

# Traffic of models the catalog did not identify (`identified` is false: the author is
# the slug's prefix all the same), by the slug as sent (`model`; `model_canonical` is the
# catalog's), largest first.
_GAPS_SQL = """
WITH (SELECT sum(total_tokens) FROM $db.raw_events) AS all_tokens
SELECT model, count() AS requests, sum(total_tokens) AS tokens,
       if(all_tokens > 0, tokens / all_tokens, 0) AS share
FROM $db.raw_events
WHERE NOT identified
GROUP BY model
ORDER BY tokens DESC, model
LIMIT {limit:UInt32}
"""


def totals(query: Query, database: str) -> Totals:
    sql = _TOTALS_SQL.replace("$db", database_name(database))
    ((events, tokens, spend, unidentified, latest),) = query(sql, {})
    return Totals(int(events), int(tokens), float(spend), int(unidentified), str(latest) or None)


def catalog_gaps(query: Query, database: str, limit: int = GAPS) -> list[Gap]:
    """The unidentified model slugs with the most tokens."""
    sql = _GAPS_SQL.replace("$db", database_name(database))
    rows = query(sql, {"limit": limit})
    return [Gap(str(m), int(r), int(t), float(s)) for m, r, t, s in rows]


def movers(table: ShareTable, limit: int = MOVERS) -> list[Mover]:
    """The values whose share changed most between the last two periods."""
    if len(table.periods) < 2:
        return []
    moved = [Mover(v, s[-1], s[-2]) for v, s in table.shares.items()]
    moved.sort(key=lambda m: (-abs(m.share - m.previous), m.value))
    return moved[:limit]


# The windows the share stage has closed: it publishes a final snapshot of each.
_CLOSED_SQL = """
SELECT DISTINCT window_start FROM $db.share_snapshots
WHERE window_kind = {window_kind:String} AND dimension = {dimension:String} AND final
"""


def closed_windows(query: Query, database: str, view: View) -> set[date]:
    sql = _CLOSED_SQL.replace("$db", database_name(database))
    rows = query(sql, {"window_kind": view.window, "dimension": view.dimension})
    return {date.fromisoformat(str(start)[:10]) for (start,) in rows}


def marks(query: Query, database: str, view: View) -> list[CrossoverMark]:
    """The view's published crossovers, one per (window, pair): the latest status wins
    (a closed window's final over its provisional one), and a provisional one of a
    window that closed without it is left out (the lead did not hold). Rolling windows
    are placed on their last day, where the rolling share series puts them."""
    found = crossovers(
        query, database, dimension=view.dimension, window_kind=view.window, measure=view.measure
    )
    closed = closed_windows(query, database, view) if found else set()
    rank = {"provisional": 0, "final": 1, "late_correction": 2}
    best: dict[tuple[date, str, str], CrossoverMark] = {}
    for c in found:
        if c.status == "provisional" and c.window_start in closed:
            continue
        period = c.window_start + timedelta(days=6 if view.window == "rolling_7d" else 0)
        mark = CrossoverMark(period, c.window_label, c.leader, c.overtaken, c.status, c.margin_pp)
        key = (period, c.leader, c.overtaken)
        held = best.get(key)
        if held is None or rank.get(mark.status, 0) >= rank.get(held.status, 0):
            best[key] = mark
    return sorted(best.values(), key=lambda m: (m.period, m.leader, m.overtaken))


def build(query: Query, database: str, view: View) -> Snapshot:
    """Everything the page shows for `view`, read now.

    The totals are read first: rows only ever get added, so every other part of the
    snapshot holds at least the rows its totals count.
    """
    counted = totals(query, database)
    points = weekly_shares(
        query,
        database,
        view.dimension,
        weeks=view.weeks,
        measure=view.measure,
        exclude_unidentified=view.identified,
        rolling=view.window == "rolling_7d",
    )
    table = ShareTable.pivot(points)
    shown = table.top(CHART_VALUES)
    feed = [row._asdict() for row in alerts(query, database, limit=ALERTS)]
    return Snapshot(
        view=view,
        generated_at=datetime.now(UTC),
        totals=counted,
        periods=shown.periods,
        series=[Series(v, s) for v, s in shown.shares.items()],
        crossovers=marks(query, database, view),
        movers=movers(table),
        alerts=feed,
        gaps=catalog_gaps(query, database),
    )


def vocabulary() -> dict[str, Sequence[str]]:
    """The pickers' choices."""
    return {"dimensions": DIMENSIONS, "measures": ANALYST_MEASURES, "windows": WINDOWS}
