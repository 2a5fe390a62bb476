"""Commands for the study's analyses: per-request figures, tool calls and cache hits,
prices and the cost/volume quadrants, volume and growth, continents, and models per
app or user. The SQL lives in ``analysts.study``; every command takes ``--format``.
"""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from tokenshare.cli.analyst import call, require, runner, share_grid, sparkline
from tokenshare.cli.context import Context
from tokenshare.cli.report import Report, emit, format_option, pct, signed_pct, usd, whole
from tokenshare.schema.vocabulary import ANALYST_MEASURES, DIMENSIONS

weeks_option = click.option(
    "--weeks",
    default=12,
    show_default=True,
    type=click.IntRange(1, 520),
    help="The last N ISO weeks.",
)
optional_by = click.option(
    "--by",
    "dimension",
    type=click.Choice(DIMENSIONS),
    help="Per value of this dimension (default: the whole market).",
)
top_option = click.option(
    "--top",
    default=10,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="With --by: the values with the most tokens over the weeks.",
)


def named(fields: tuple[str, ...], dimension: str | None) -> tuple[str, ...]:
    """The fields, with `value` called after the dimension it is a value of."""
    return tuple(dimension if f == "value" and dimension else f for f in fields)


@click.command()
@optional_by
@weeks_option
@top_option
@format_option
@click.pass_obj
def requests(ctx: Context, dimension: str | None, weeks: int, top: int, fmt: str) -> None:
    """Tokens per request by ISO week: prompt, completion and reasoning, the reasoning
    share of completion tokens, the cache-hit share of prompt tokens and the effective
    price per million tokens.

    \b
    Examples:
      tokenshare requests
      tokenshare requests --by category --weeks 8
      tokenshare requests --by model --top 5 --format csv
    """
    from tokenshare.analysts.study import RequestFigures, per_request

    query, db = runner(ctx)
    rows = call(lambda: per_request(query, db, dimension, weeks=weeks, top=top))
    require(rows, "requests")
    title = f"Per request, by ISO week{f' and {dimension}' if dimension else ''}"
    formats = {
        "prompt_per_request": whole, "completion_per_request": whole,
        "reasoning_per_request": whole, "reasoning_share": pct, "cache_hit_share": pct,
        "usd_per_mtok": usd,
    }  # fmt: skip
    columns = named(RequestFigures._fields, dimension)
    emit(fmt, Report(title, columns, [tuple(r) for r in rows]), formats=formats)


@click.command()
@optional_by
@weeks_option
@top_option
@format_option
@click.pass_obj
def tools(ctx: Context, dimension: str | None, weeks: int, top: int, fmt: str) -> None:
    """Tool calling and prompt caching by ISO week: the share of tokens (and requests)
    in requests that made a tool call, and the cache-hit share of prompt tokens (and
    of requests).

    \b
    Examples:
      tokenshare tools
      tokenshare tools --by model --top 8
      tokenshare tools --by category --format json
    """
    from tokenshare.analysts.study import ToolUse, tool_use

    query, db = runner(ctx)
    rows = call(lambda: tool_use(query, db, dimension, weeks=weeks, top=top))
    require(rows, "requests")
    title = f"Tool calls and cache hits, by ISO week{f' and {dimension}' if dimension else ''}"
    formats = {
        "tool_token_share": pct, "tool_request_share": pct, "cache_hit_share": pct,
        "cache_hit_request_share": pct,
    }  # fmt: skip
    columns = named(ToolUse._fields, dimension)
    emit(fmt, Report(title, columns, [tuple(r) for r in rows]), formats=formats)


@click.command()
@click.option(
    "--by",
    "dimension",
    default="category",
    show_default=True,
    type=click.Choice(DIMENSIONS),
    help="Whose cost and volume (category: the four quadrants; author: spend against tokens).",
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@format_option
@click.pass_obj
def prices(ctx: Context, dimension: str, limit: int, fmt: str) -> None:
    """Cost against volume over all stored traffic: effective price per million tokens,
    token and spend shares and their ratio, the quadrant (cost and volume above or at
    most the median), and the price elasticity of volume (log-log least squares).

    \b
    Examples:
      tokenshare prices
      tokenshare prices --by author
      tokenshare prices --by model --limit 20 --format csv
    """
    from tokenshare.analysts.study import PricePoint, elasticity
    from tokenshare.analysts.study import prices as find

    query, db = runner(ctx)
    rows = call(lambda: find(query, db, dimension, limit=limit))
    require(rows, f"traffic by {dimension}")
    fit = elasticity(query, db, dimension)
    notes = (
        [
            f"elasticity {fit.elasticity:+.3f} over {fit.points} values (R² {fit.r_squared:.2f}):"
            f" 10% cheaper, {fit.elasticity * -10:+.1f}% tokens"
        ]
        if fit is not None
        else ["elasticity: fewer than 2 priced values"]
    )
    title = f"Cost against volume by {dimension}"
    formats = {
        "spend_usd": usd, "usd_per_mtok": usd, "token_share": pct, "spend_share": pct,
        "spend_to_token_ratio": lambda v: f"{float(v):.2f}x",
    }  # fmt: skip
    report = Report(title, named(PricePoint._fields, dimension), [tuple(r) for r in rows], notes)
    emit(fmt, report, formats=formats)


@click.command()
@click.option("--months", is_flag=True, help="Calendar months instead of ISO weeks.")
@click.option("--by", "dimension", type=click.Choice(DIMENSIONS), help="Growth per value.")
@click.option("--weeks", type=click.IntRange(1, 520), help="Only the last N ISO weeks.")
@top_option
@format_option
@click.pass_obj
def volume(
    ctx: Context, months: bool, dimension: str | None, weeks: int | None, top: int, fmt: str
) -> None:
    """Volume and growth: tokens, requests and spend per ISO week (or calendar month)
    with the change on the period before; `days` shows partial periods. With --by,
    each value's weekly tokens and week-over-week change.

    \b
    Examples:
      tokenshare volume
      tokenshare volume --months
      tokenshare volume --by author --weeks 6 --format csv
    """
    from tokenshare.analysts.study import GrowthPoint, VolumePoint, growth
    from tokenshare.analysts.study import volume as totals

    query, db = runner(ctx)
    if dimension is not None:
        found = call(lambda: growth(query, db, dimension, weeks=weeks, top=top))
        require(found, f"traffic by {dimension}")
        title = f"Tokens per ISO week by {dimension}, and the change on the week before"
        report = Report(title, named(GrowthPoint._fields, dimension), [tuple(g) for g in found])
        emit(fmt, report, formats={"change": signed_pct})
        return
    points = call(lambda: totals(query, db, months=months, weeks=weeks))
    require(points, "traffic")
    period = "calendar month" if months else "ISO week"
    title = f"Volume per {period}, and the change on the one before"
    grid = Table(title=title, title_justify="left")
    for name in ("period", "days", "requests", "tokens", "spend", "change", ""):
        grid.add_column(name, justify="left" if name in ("period", "") else "right")
    trend = sparkline([float(p.tokens) for p in points])
    for p, mark in zip(points, trend, strict=True):
        label = f"{p.period:%b %Y}" if months else p.period.isoformat()
        grid.add_row(label, str(p.days), f"{p.requests:,}", f"{p.tokens:,}", usd(p.spend_usd),
                     signed_pct(p.change), mark)  # fmt: skip
    emit(fmt, Report(title, VolumePoint._fields, [tuple(p) for p in points]), grid)


@click.command()
@weeks_option
@click.option(
    "--measure",
    default="tokens",
    show_default=True,
    type=click.Choice(ANALYST_MEASURES),
    help="What a share is a share of (spend_usd: the reports' spend by continent).",
)
@format_option
@click.pass_obj
def regions(ctx: Context, weeks: int, measure: str, fmt: str) -> None:
    """Shares by continent per ISO week: regions (ISO country codes, continent names or
    cloud region names) grouped into continents. For languages: `tokenshare shares
    --by language`.

    \b
    Examples:
      tokenshare regions
      tokenshare regions --measure spend_usd --weeks 26
      tokenshare regions --format csv
    """
    from tokenshare.analysts.queries import ShareTable
    from tokenshare.analysts.study import continent_shares

    query, db = runner(ctx)
    points = call(lambda: continent_shares(query, db, weeks=weeks, measure=measure))
    require(points, "traffic by region")
    table = ShareTable.pivot(points)
    title = f"Share of {measure} by continent (%), ISO weeks starting"
    report = Report(title, ("week", "continent", "share"), [tuple(p) for p in points])
    emit(fmt, report, share_grid(table, "continent", title, set(table.shares)))


@click.command()
@click.option("--users", is_flag=True, help="Users instead of apps.")
@format_option
@click.pass_obj
def breadth(ctx: Context, users: bool, fmt: str) -> None:
    """How many models apps (or users) use: how many used exactly 1, 2, ... models,
    and the share of their tokens on their most-used model.

    \b
    Examples:
      tokenshare breadth
      tokenshare breadth --users --format json
    """
    from tokenshare.analysts.study import Breadth, models_per_member

    query, db = runner(ctx)
    members = "users" if users else "apps"
    rows = call(lambda: models_per_member(query, db, members=members))
    require(rows, f"{members} (events need {'user_id' if users else 'app_id'})")
    total = sum(r.members for r in rows)
    mean = sum(r.models * r.members for r in rows) / total
    title = f"Models per {members[:-1]} ({total:,} {members}, {mean:.1f} models on average)"
    formats: dict[str, Any] = {"share": pct, "avg_top_model_share": pct}
    emit(fmt, Report(title, Breadth._fields, [tuple(r) for r in rows]), formats=formats)
