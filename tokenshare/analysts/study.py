"""The study's analyses as typed queries over the views of migration 010: per-request
figures, tool calls and cache hits, prices and the cost/volume quadrants with an
elasticity estimate, volume and growth (weeks and calendar months), continents,
monthly retention with returning members, and models per app or user.

The same safety rule as ``queries``: identifiers only from allowlists, values
bound by ClickHouse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

from tokenshare.analysts.queries import (
    RETENTION_VIEWS,
    Query,
    SharePoint,
    allowed,
    as_date,
    database_name,
    positive,
    recent_weeks,
    render_sql,
)
from tokenshare.schema.vocabulary import ANALYST_MEASURES, DIMENSIONS, SHARE_COLUMNS

#: The value that stands for the whole market when no dimension is asked for.
ALL = "all"
#: Whose monthly retention -> view.
MONTHLY_RETENTION_VIEWS: dict[str, str] = {
    "apps": "monthly_app_retention",
    "users": "monthly_user_retention",
}


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _top_values(dimension: str | None, top: int | None, params: dict[str, Any]) -> str:
    """Keep the `top` values with the most tokens over the kept weeks (None: all)."""
    if dimension is None or top is None:
        return ""
    params["top"] = positive("top", top)
    return (
        " AND value IN (SELECT value FROM $db.$view WHERE dimension = {dimension:String}$recent"
        " GROUP BY value ORDER BY sum(tokens) DESC, value LIMIT {top:UInt32})"
    )


def _latest(view: str, dimension: str | None) -> str:
    where = " WHERE dimension = {dimension:String}" if dimension is not None else ""
    return f"WITH (SELECT max(week) FROM $db.{view}{where}) AS latest\n"


def _by(dimension: str | None, params: dict[str, Any]) -> str:
    if dimension is None:
        return ""
    params["dimension"] = allowed("dimension", dimension, DIMENSIONS)
    return " AND dimension = {dimension:String}"


def _weekly(
    query: Query,
    database: str,
    columns: str,
    view: str,
    dimension: str | None,
    weeks: int | None,
    top: int | None,
) -> list[tuple[Any, ...]]:
    """(week, value, *columns) per ISO week from `view` (per dimension value) or from
    ``weekly_totals`` (the whole market, value ALL)."""
    params: dict[str, Any] = {}
    source = view if dimension is not None else "weekly_totals"
    value = "value" if dimension is not None else f"'{ALL}'"
    where = _by(dimension, params)
    recent = recent_weeks("week", weeks, params)
    top_sql = _top_values(dimension, top, params).replace("$recent", recent)
    sql = (
        _latest(source, dimension)
        + f"SELECT week, {value} AS value, {columns} FROM $db.$view"
        + f" WHERE 1{where}{recent}{top_sql} ORDER BY week, value"
    )
    rows = query(render_sql(sql, db=database_name(database), view=source), params)
    return [tuple(r) for r in rows]


# --- per request -------------------------------------------------------------------


class RequestFigures(NamedTuple):
    """Per-request figures of one value (or the whole market) in one ISO week."""

    week: date
    value: str
    requests: int
    prompt_per_request: float
    completion_per_request: float
    reasoning_per_request: float
    reasoning_share: float  # of completion tokens
    cache_hit_share: float  # of prompt tokens
    usd_per_mtok: float  # effective price


def per_request(
    query: Query,
    database: str,
    dimension: str | None = None,
    *,
    weeks: int | None = 12,
    top: int | None = 10,
) -> list[RequestFigures]:
    """Prompt, completion and reasoning tokens per request, reasoning and cache-hit
    shares and price per million tokens, per ISO week: of the whole market (no
    dimension) or of the `top` values of `dimension` by tokens."""
    columns = (
        "requests, prompt_per_request, completion_per_request, reasoning_per_request, "
        "reasoning_share, "
        "cache_hit_share, usd_per_mtok"
    )
    rows = _weekly(query, database, columns, "weekly_per_request", dimension, weeks, top)
    return [
        RequestFigures(as_date(w), str(v), int(n), *(float(x) for x in rest))
        for w, v, n, *rest in rows
    ]


class ToolUse(NamedTuple):
    """Tool calls and cache hits of one value (or the whole market) in one ISO week."""

    week: date
    value: str
    requests: int
    tokens: int
    tool_token_share: float  # tokens in requests with a tool call
    tool_request_share: float
    cache_hit_share: float  # cached among prompt tokens
    cache_hit_request_share: float  # requests that read cached tokens


def tool_use(
    query: Query,
    database: str,
    dimension: str | None = None,
    *,
    weeks: int | None = 12,
    top: int | None = 10,
) -> list[ToolUse]:
    """Tool-call and cache-hit shares per ISO week (whole market, or per value)."""
    columns = (
        "requests, tokens, tool_token_share, tool_request_share, cache_hit_share, "
        "cache_hit_request_share"
    )
    rows = _weekly(query, database, columns, "weekly_tool_use", dimension, weeks, top)
    return [
        ToolUse(as_date(w), str(v), int(n), int(t), *(float(x) for x in rest))
        for w, v, n, t, *rest in rows
    ]


# --- prices ------------------------------------------------------------------------


class PricePoint(NamedTuple):
    """One value's cost against volume over all stored traffic."""

    value: str
    tokens: int
    spend_usd: float
    usd_per_mtok: float
    token_share: float
    spend_share: float
    spend_to_token_ratio: float
    quadrant: str  # "high|low cost, high|low volume", against the values' medians


@dataclass(frozen=True, slots=True)
class Elasticity:
    """The least-squares slope of log(tokens) on log(price) over a dimension's values."""

    dimension: str
    points: int
    elasticity: float
    intercept: float
    r_squared: float


_PRICES_SQL = """
SELECT value, tokens, spend_usd, usd_per_mtok, token_share, spend_share,
       spend_to_token_ratio, quadrant
FROM $db.price_volume
WHERE dimension = {dimension:String}
ORDER BY tokens DESC, value
LIMIT {limit:UInt32}
"""
_ELASTICITY_SQL = """
SELECT dimension, points, elasticity, intercept, r_squared
FROM $db.price_elasticity
WHERE dimension = {dimension:String}
"""


def prices(
    query: Query, database: str, dimension: str = "category", *, limit: int = 1000
) -> list[PricePoint]:
    """Effective price per million tokens, token and spend shares, their ratio and the
    cost/volume quadrant of every value of `dimension`, largest by tokens first."""
    params = {
        "dimension": allowed("dimension", dimension, DIMENSIONS),
        "limit": positive("limit", limit),
    }
    rows = query(render_sql(_PRICES_SQL, db=database_name(database)), params)
    return [
        PricePoint(str(v), int(t), float(s), float(p), float(ts), float(ss), float(r), str(q))
        for v, t, s, p, ts, ss, r, q in rows
    ]


def elasticity(query: Query, database: str, dimension: str = "category") -> Elasticity | None:
    """The price elasticity of volume across `dimension`'s values (None: under 2 priced)."""
    params = {"dimension": allowed("dimension", dimension, DIMENSIONS)}
    rows = query(render_sql(_ELASTICITY_SQL, db=database_name(database)), params)
    if not rows:
        return None
    d, n, e, b, r2 = rows[0]
    return Elasticity(str(d), int(n), float(e), float(b), float(r2))


# --- volume and growth -------------------------------------------------------------


class VolumePoint(NamedTuple):
    """The whole market in one ISO week or calendar month, and the change on the one
    before (None: that period had no traffic)."""

    period: date
    days: int  # days with traffic: a partial period shows fewer
    requests: int
    tokens: int
    spend_usd: float
    change: float | None  # tokens over the previous period's, minus 1


_VOLUME_SQL = {
    False: """
WITH (SELECT max(week) FROM $db.weekly_totals) AS latest
SELECT week, days, requests, tokens, spend_usd, tokens_wow
FROM $db.weekly_totals WHERE 1$recent ORDER BY week
""",
    True: """
SELECT month, days, requests, tokens, spend_usd, tokens_mom
FROM $db.monthly_totals ORDER BY month
""",
}


def volume(
    query: Query, database: str, *, months: bool = False, weeks: int | None = None
) -> list[VolumePoint]:
    """Weekly (or calendar-month) totals and their change on the period before."""
    params: dict[str, Any] = {}
    recent = "" if months else recent_weeks("week", weeks, params)
    sql = render_sql(_VOLUME_SQL[months].replace("$recent", recent), db=database_name(database))
    return [
        VolumePoint(as_date(p), int(d), int(r), int(t), float(s), _float(c))
        for p, d, r, t, s, c in query(sql, params)
    ]


class GrowthPoint(NamedTuple):
    week: date
    value: str
    tokens: int
    change: float | None  # on the previous ISO week (None: no traffic then)


_GROWTH_SQL = """
WITH (SELECT max(week) FROM $db.weekly_growth WHERE dimension = {dimension:String}) AS latest
SELECT week, value, tokens, tokens_wow
FROM $db.weekly_growth
WHERE dimension = {dimension:String}$recent$top
ORDER BY week, value
"""


def growth(
    query: Query, database: str, dimension: str, *, weeks: int | None = 8, top: int | None = 10
) -> list[GrowthPoint]:
    """Tokens per ISO week of the `top` values of `dimension` and their week-over-week
    change."""
    params: dict[str, Any] = {"dimension": allowed("dimension", dimension, DIMENSIONS)}
    recent = recent_weeks("week", weeks, params)
    top_sql = _top_values(dimension, top, params).replace("$recent", recent)
    sql = _GROWTH_SQL.replace("$recent", recent).replace("$top", top_sql)
    rows = query(render_sql(sql, db=database_name(database), view="weekly_growth"), params)
    return [GrowthPoint(as_date(w), str(v), int(t), _float(c)) for w, v, t, c in rows]


# --- continents --------------------------------------------------------------------

_CONTINENTS_SQL = """
WITH (SELECT max(week) FROM $db.weekly_continent_shares) AS latest
SELECT week, continent, $column
FROM $db.weekly_continent_shares
WHERE 1$recent
ORDER BY week, continent
"""


def continent_shares(
    query: Query, database: str, *, weeks: int | None = 12, measure: str = "tokens"
) -> list[SharePoint]:
    """Shares of tokens (or spend, requests) by continent per ISO week."""
    column = SHARE_COLUMNS[allowed("measure", measure, ANALYST_MEASURES)]
    params: dict[str, Any] = {}
    sql = _CONTINENTS_SQL.replace("$recent", recent_weeks("week", weeks, params))
    rows = query(render_sql(sql, db=database_name(database), column=column), params)
    return [SharePoint(as_date(w), str(c), float(s)) for w, c, s in rows]


# --- monthly retention -------------------------------------------------------------


class MonthlyRetention(NamedTuple):
    cohort_month: date
    months_after: int
    cohort_size: int
    active: int
    returning: int  # active again after a month without the model
    retention: float


_MONTHLY_RETENTION_SQL = """
SELECT cohort_month, months_after, cohort_size, active, returning, retention
FROM $db.$view
WHERE model = {model:String}
ORDER BY cohort_month, months_after
"""


def monthly_retention(
    query: Query, database: str, model: str, *, members: str = "apps"
) -> list[MonthlyRetention]:
    """Calendar-month cohorts of `model`'s apps (or users): who is active each month
    after, and how many of them came back after a month away."""
    view = MONTHLY_RETENTION_VIEWS[allowed("members", members, RETENTION_VIEWS)]
    sql = render_sql(_MONTHLY_RETENTION_SQL, db=database_name(database), view=view)
    return [
        MonthlyRetention(as_date(c), int(a), int(n), int(act), int(ret), float(r))
        for c, a, n, act, ret, r in query(sql, {"model": model})
    ]


# --- models per app and user -------------------------------------------------------


class Breadth(NamedTuple):
    """How many apps (users) used exactly `models` models."""

    models: int
    members: int
    share: float  # of all apps (users)
    avg_top_model_share: float  # of their tokens on their most-used model


_BREADTH_SQL = """
SELECT models, count() AS n, n / sum(n) OVER () AS share, avg(top_model_share)
FROM $db.models_per_member
WHERE members = {members:String}
GROUP BY models
ORDER BY models
"""


def models_per_member(query: Query, database: str, *, members: str = "apps") -> list[Breadth]:
    """The distribution of apps (or users) by the number of models they used."""
    params = {"members": allowed("members", members, RETENTION_VIEWS)}
    rows = query(render_sql(_BREADTH_SQL, db=database_name(database)), params)
    return [Breadth(int(m), int(n), float(s), float(t)) for m, n, s, t in rows]
