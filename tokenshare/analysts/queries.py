"""The analyst views as typed queries: shares, crossovers, alerts, top values,
retention and concentration.

Safety rule: identifiers (database, view, column) enter the SQL only after an
allowlist check (``allowed``; the database name by pattern), and every value
(dimension, model slug, status, weeks, limits) is bound server-side with
ClickHouse's ``{name:Type}`` placeholders, never formatted into the SQL.
SQL templates use ``$name`` (``string.Template``) for the checked identifiers
so that they cannot be confused with ClickHouse's braces.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from string import Template
from typing import Any, NamedTuple, TypeVar

from tokenshare.schema.catalog import UNIDENTIFIED
from tokenshare.schema.vocabulary import (
    ANALYST_MEASURES,
    DIMENSIONS,
    MEASURES,
    RULES,
    SHARE_COLUMNS,
    STATUSES,
    WINDOW_KINDS,
)

#: Runs one read-only statement with bound parameters; returns the rows.
Query = Callable[[str, dict[str, Any]], Sequence[Sequence[Any]]]
Name = TypeVar("Name", bound=str)

#: rolling? -> (view, its period column).
SHARE_VIEWS: dict[bool, tuple[str, str]] = {
    False: ("weekly_shares", "week"),
    True: ("rolling_shares", "window_end"),
}
#: Whose retention -> view.
RETENTION_VIEWS: dict[str, str] = {"apps": "app_retention", "users": "user_retention"}

_DATABASE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


# --- allowlists --------------------------------------------------------------------


def allowed(kind: str, value: str, options: Iterable[Name]) -> Name:
    """The one of `options` that `value` is; otherwise a ValueError naming them all."""
    choices = list(options)
    for choice in choices:
        if value == choice:
            return choice
    raise ValueError(f"{kind} {value!r} is not allowed; use one of: {', '.join(choices)}")


def database_name(name: str) -> str:
    """A database name safe to write into SQL (letters, digits, underscore)."""
    if not _DATABASE.fullmatch(name):
        raise ValueError(
            f"database {name!r} is not allowed; use letters, digits and underscores "
            "(not starting with a digit, at most 63)"
        )
    return name


def positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
    return value


def render_sql(template: str, **identifiers: str) -> str:
    return Template(template).substitute(identifiers)


def recent_weeks(period: str, weeks: int | None, params: dict[str, Any]) -> str:
    """The condition keeping the last `weeks` weeks before `latest` (None: no condition;
    Date arithmetic wraps around below 1970, so "all" must not be a huge number)."""
    if weeks is None:
        return ""
    params["weeks"] = positive("weeks", weeks)
    return f" AND {period} > latest - toIntervalDay(7 * {{weeks:UInt32}})"


def _where(filters: Mapping[str, Any]) -> str:
    """`col = {col:String}` per given filter. Keys are this module's column names, never
    input; the values are bound as parameters."""
    return "".join(f" AND {name} = {{{name}:String}}" for name in filters)


def _given(**filters: Any) -> dict[str, Any]:
    return {k: v for k, v in filters.items() if v is not None}


def as_date(value: Any) -> date:
    """A Date column as a date (remote results arrive as ISO strings)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


# --- shares ------------------------------------------------------------------------


class SharePoint(NamedTuple):
    """One value's share in one period (ISO week start, or rolling window's last day)."""

    period: date
    value: str
    share: float


_SHARES_SQL = """
WITH (SELECT max($period) FROM $db.$view WHERE dimension = {dimension:String}) AS latest
SELECT $period AS period, value,
       if(sum($column) OVER w > 0, $column / sum($column) OVER w, 0) AS share
FROM $db.$view
WHERE dimension = {dimension:String}$extra
WINDOW w AS (PARTITION BY $period)
ORDER BY period, value
"""


# Shares are renormalised over the rows kept, so that leaving 'unidentified' out
# gives shares among identified traffic for every measure (the views carry an
# identified share for tokens only). Authors and models the catalog cannot place
# (stealth models: a slug prefix that is no known lab) have a value of their own,
# so they are left out by name (``unplaced_values``): every catalog dimension then
# loses the same traffic as origin_bloc's 'unidentified' bucket.
def not_unidentified(column: str = "value") -> str:
    """The condition leaving out `column`'s unidentified and unplaced values (binds
    {unidentified} and {dimension}; `column` is an allowlisted name)."""
    return (
        f" AND {column} != {{unidentified:String}} AND {column} NOT IN"
        " (SELECT value FROM $db.unplaced_values WHERE dimension = {dimension:String})"
    )


# Rolling: the non-overlapping 7-day windows that end on the latest day, one per week.
_EVERY_SEVENTH = " AND dateDiff('day', $period, latest) % 7 = 0"


def weekly_shares(
    query: Query,
    database: str,
    dimension: str,
    *,
    weeks: int | None = 12,
    measure: str = "tokens",
    exclude_unidentified: bool = False,
    rolling: bool = False,
    where: Mapping[str, str] | None = None,
) -> list[SharePoint]:
    """Shares of every value of `dimension` in the last `weeks` weeks (None: all).

    ISO weeks by default; `rolling` gives the 7-day windows ending on the latest
    day and every 7 days before it (the freshest view, one column per week).
    `where` keeps one segment ({"weights": "open"}): shares within it.
    """
    if where:
        if rolling:
            raise ValueError("rolling windows are not available within a segment; drop --where")
        return segment_shares(query, database, dimension, where, weeks=weeks, measure=measure,
                              exclude_unidentified=exclude_unidentified)  # fmt: skip
    allowed("dimension", dimension, DIMENSIONS)
    column = SHARE_COLUMNS[allowed("measure", measure, ANALYST_MEASURES)]
    view, period = SHARE_VIEWS[rolling]
    params: dict[str, Any] = {"dimension": dimension, "unidentified": UNIDENTIFIED}
    extra = recent_weeks(period, weeks, params)
    extra += not_unidentified() if exclude_unidentified else ""
    extra += _EVERY_SEVENTH if rolling else ""
    template = _SHARES_SQL.replace("$extra", extra)
    sql = render_sql(template, db=database_name(database), view=view, period=period, column=column)
    return [SharePoint(as_date(p), str(v), float(s)) for p, v, s in query(sql, params)]


@dataclass(frozen=True, slots=True)
class ShareTable:
    """Shares pivoted: one row per value, one column per period (0 where a value is absent)."""

    periods: list[date]
    shares: dict[str, list[float]]  # ordered: largest latest share first

    @classmethod
    def pivot(cls, points: Iterable[SharePoint]) -> ShareTable:
        points = list(points)
        periods = sorted({p.period for p in points})
        index = {d: i for i, d in enumerate(periods)}
        shares: dict[str, list[float]] = {}
        for p in points:
            shares.setdefault(p.value, [0.0] * len(periods))[index[p.period]] = p.share
        order = sorted(shares, key=lambda v: (-shares[v][-1], -max(shares[v]), v))
        return cls(periods, {v: shares[v] for v in order})

    def top(self, n: int, other: str = "other") -> ShareTable:
        """The `n` values with the highest peak share; the rest summed into `other (k)`."""
        if len(self.shares) <= n:
            return self
        keep = sorted(self.shares, key=lambda v: (-max(self.shares[v]), v))[:n]
        rest = [v for v in self.shares if v not in keep]
        folded = [sum(self.shares[v][i] for v in rest) for i in range(len(self.periods))]
        kept = {v: s for v, s in self.shares.items() if v in keep}
        return ShareTable(self.periods, {**kept, f"{other} ({len(rest)})": folded})

    def series(self) -> dict[str, list[tuple[date, float]]]:
        return {v: list(zip(self.periods, s, strict=True)) for v, s in self.shares.items()}


_SEGMENT_SQL = """
WITH (SELECT max(week) FROM $db.event_dimensions) AS latest
SELECT week AS period, $dimension AS value, sum($measure) AS amount,
       if(sum(amount) OVER w > 0, amount / sum(amount) OVER w, 0) AS share
FROM $db.event_dimensions
WHERE 1$extra
GROUP BY period, value
WINDOW w AS (PARTITION BY period)
ORDER BY period, value
"""


def segment_filter(where: Mapping[str, str], params: dict[str, Any]) -> str:
    """`dim = {where_i:String}` per filter on ``event_dimensions``, whose columns are
    the dimensions' names: the names are allowlisted, the values bound."""
    sql = ""
    for i, (name, value) in enumerate(sorted(where.items())):
        column = allowed("dimension", name, DIMENSIONS)
        params[f"where_{i}"] = value
        sql += f" AND {column} = {{where_{i}:String}}"
    return sql


def segment_shares(
    query: Query,
    database: str,
    dimension: str,
    where: Mapping[str, str],
    *,
    weeks: int | None = 12,
    measure: str = "tokens",
    exclude_unidentified: bool = False,
) -> list[SharePoint]:
    """Shares of `dimension`'s values per ISO week within the traffic matching `where`
    (China-origin against rest-of-world open models: by origin_bloc, weights=open)."""
    column = allowed("dimension", dimension, DIMENSIONS)
    total = allowed("measure", measure, ANALYST_MEASURES)  # a column of the same name
    db = database_name(database)
    params: dict[str, Any] = {"dimension": dimension, "unidentified": UNIDENTIFIED}
    extra = segment_filter(where, params) + recent_weeks("week", weeks, params)
    if exclude_unidentified:
        extra += not_unidentified(column)
    sql = render_sql(_SEGMENT_SQL.replace("$extra", extra), db=db, dimension=column, measure=total)
    return [SharePoint(as_date(p), str(v), float(s)) for p, v, _, s in query(sql, params)]


# --- crossovers and alerts ---------------------------------------------------------


class Crossover(NamedTuple):
    window_kind: str
    window_start: date
    window_label: str
    status: str
    dimension: str
    measure: str
    leader: str
    overtaken: str
    margin_pp: float
    text: str


_CROSSOVERS_SQL = """
SELECT window_kind, window_start, window_label, status, dimension, measure,
       leader, overtaken, margin_pp, text
FROM $db.crossovers
WHERE 1$where
ORDER BY window_start DESC, dimension DESC, window_kind DESC, leader DESC, overtaken DESC
LIMIT {limit:UInt32}
"""


def crossovers(
    query: Query,
    database: str,
    *,
    dimension: str | None = None,
    status: str | None = None,
    window_kind: str | None = None,
    measure: str | None = None,
    limit: int = 1000,
) -> list[Crossover]:
    """The newest `limit` crossover alerts as the share stage published them, oldest first."""
    filters = _given(
        dimension=dimension and allowed("dimension", dimension, DIMENSIONS),
        status=status and allowed("status", status, STATUSES),
        window_kind=window_kind and allowed("window kind", window_kind, WINDOW_KINDS),
        measure=measure and allowed("measure", measure, MEASURES),
    )
    sql = render_sql(_CROSSOVERS_SQL.replace("$where", _where(filters)), db=database_name(database))
    rows = query(sql, {**filters, "limit": positive("limit", limit)})
    return [_crossover(row) for row in reversed(rows)]


def _crossover(row: Sequence[Any]) -> Crossover:
    kind, start, label, status, dimension, measure, leader, overtaken, margin, text = row
    return Crossover(
        str(kind), as_date(start), str(label), str(status), str(dimension), str(measure),
        str(leader), str(overtaken), float(margin), str(text),
    )  # fmt: skip


class AlertRow(NamedTuple):
    window_start: date
    window_label: str
    rule: str
    status: str
    dimension: str
    measure: str
    subject: str
    text: str
    fired_at: str  # UTC, as ClickHouse prints it


_ALERTS_SQL = """
SELECT window_start, window_label, rule, status, dimension, measure, subject, text,
       toString(fired_at)
FROM $db.alerts FINAL
WHERE 1$where
ORDER BY window_start DESC, fired_at DESC, alert_id
LIMIT {limit:UInt32}
"""


def alerts(
    query: Query,
    database: str,
    *,
    rule: str | None = None,
    status: str | None = None,
    dimension: str | None = None,
    limit: int = 50,
) -> list[AlertRow]:
    """The newest alerts (by window), optionally of one rule, status and dimension."""
    filters = _given(
        rule=rule and allowed("rule", rule, RULES),
        status=status and allowed("status", status, STATUSES),
        dimension=dimension and allowed("dimension", dimension, DIMENSIONS),
    )
    sql = render_sql(_ALERTS_SQL.replace("$where", _where(filters)), db=database_name(database))
    rows = query(sql, {**filters, "limit": positive("limit", limit)})
    return [AlertRow(as_date(row[0]), *(str(c) for c in row[1:])) for row in rows]


# --- top values --------------------------------------------------------------------


class TopValue(NamedTuple):
    value: str
    total: float  # tokens, requests or USD over the weeks
    share: float  # of every value's total over the same weeks


_TOP_SQL = """
WITH (SELECT max(week) FROM $db.weekly_shares WHERE dimension = {dimension:String}) AS latest
SELECT value, sum($total) AS amount, if(sum(amount) OVER () > 0, amount / sum(amount) OVER (), 0)
FROM $db.weekly_shares
WHERE dimension = {dimension:String}$extra
GROUP BY value
ORDER BY amount DESC, value
LIMIT {limit:UInt32}
"""


def top_values(
    query: Query,
    database: str,
    dimension: str,
    *,
    weeks: int = 4,
    measure: str = "tokens",
    limit: int = 10,
    exclude_unidentified: bool = False,
) -> list[TopValue]:
    """The largest values of `dimension` over the last `weeks` ISO weeks."""
    allowed("dimension", dimension, DIMENSIONS)
    total = allowed("measure", measure, ANALYST_MEASURES)  # a column of the same name
    params: dict[str, Any] = {
        "dimension": dimension,
        "limit": positive("limit", limit),
        "unidentified": UNIDENTIFIED,
    }
    extra = recent_weeks("week", weeks, params)
    extra += not_unidentified() if exclude_unidentified else ""
    sql = render_sql(_TOP_SQL.replace("$extra", extra), db=database_name(database), total=total)
    return [TopValue(str(v), float(t), float(s)) for v, t, s in query(sql, params)]


# --- retention ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetentionMatrix:
    """Cohorts of apps (or users) by the ISO week they first used a model, and the
    fraction of each still using it `weeks_after` weeks later."""

    model: str
    members: str  # "apps" | "users"
    cohort_sizes: dict[date, int]  # oldest cohort first
    cells: dict[tuple[date, int], tuple[int, float]]  # (cohort, weeks after) -> active, retention
    follow: int | None = None  # weeks after the first that were asked for (None: all)

    @property
    def cohorts(self) -> list[date]:
        return list(self.cohort_sizes)

    @property
    def last_week(self) -> date | None:
        """The latest week with activity: later weeks are not observed yet, not zero."""
        return max((c + timedelta(weeks=a) for c, a in self.cells), default=None)

    def observed(self, cohort: date) -> int:
        """How many weeks after its first this cohort can be followed so far."""
        last = self.last_week
        seen = (last - cohort).days // 7 if last is not None else -1
        return seen if self.follow is None else min(seen, self.follow)

    def curve(self, cohort: date) -> list[tuple[int, float]]:
        """(weeks after, retention) of one cohort over the observed weeks; nobody active is 0."""
        return [
            (a, self.cells.get((cohort, a), (0, 0.0))[1]) for a in range(self.observed(cohort) + 1)
        ]


_RETENTION_SQL = """
SELECT cohort_week, weeks_after, active, cohort_size, retention
FROM $db.$view
WHERE model = {model:String}$recent
ORDER BY cohort_week, weeks_after
"""


def retention(
    query: Query,
    database: str,
    model: str,
    *,
    members: str = "apps",
    weeks: int | None = None,
) -> RetentionMatrix:
    """Cohort retention of `model` (canonical slug): every cohort, followed for `weeks`
    weeks after its first (None: as far as the data goes)."""
    view = RETENTION_VIEWS[allowed("members", members, RETENTION_VIEWS)]
    params: dict[str, Any] = {"model": model}
    follow = ""
    if weeks is not None:
        params["weeks"] = positive("weeks", weeks)
        follow = " AND weeks_after <= {weeks:UInt32}"
    sql = render_sql(
        _RETENTION_SQL.replace("$recent", follow), db=database_name(database), view=view
    )
    sizes: dict[date, int] = {}
    cells: dict[tuple[date, int], tuple[int, float]] = {}
    for cohort, after, active, size, share in query(sql, params):
        sizes[as_date(cohort)] = int(size)
        cells[(as_date(cohort), int(after))] = (int(active), float(share))
    return RetentionMatrix(model, members, sizes, cells, weeks)


# --- concentration -----------------------------------------------------------------


class ConcentrationPoint(NamedTuple):
    week: date
    top1_value: str
    top1_share: float
    hhi: float
    values_above_1pct: int


_CONCENTRATION_SQL = """
WITH (SELECT max(week) FROM $db.weekly_concentration WHERE dimension = {dimension:String})
     AS latest
SELECT week, top1_value, top1_share, hhi, values_above_1pct
FROM $db.weekly_concentration
WHERE dimension = {dimension:String}$recent
ORDER BY week
"""


def concentration(
    query: Query, database: str, dimension: str, *, weeks: int | None = None
) -> list[ConcentrationPoint]:
    """Top-1 share and HHI of `dimension` per ISO week (identified values; None: all weeks)."""
    allowed("dimension", dimension, DIMENSIONS)
    params: dict[str, Any] = {"dimension": dimension}
    recent = recent_weeks("week", weeks, params)
    sql = render_sql(_CONCENTRATION_SQL.replace("$recent", recent), db=database_name(database))
    return [
        ConcentrationPoint(as_date(w), str(v), float(t), float(h), int(n))
        for w, v, t, h, n in query(sql, params)
    ]
