"""Commands for analysts over the ClickHouse views: shares, crossovers, alerts, top,
retention, and plots of them (``tokenshare plot ...``).

Every query goes through ``sinks.query.run_query`` (read-only, routed to the
running store in embedded mode); the SQL lives in ``analysts.queries``.
matplotlib is imported by the plot commands only, so the rest stays quick.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.decorators import FC
from rich.table import Table

from tokenshare.cli.context import Context, fail
from tokenshare.cli.query import NO_DATA_HINT, query_or_fail
from tokenshare.cli.report import Report, emit, format_option
from tokenshare.schema.vocabulary import (
    ANALYST_MEASURES,
    DIMENSIONS,
    RULES,
    STATUSES,
    WINDOW_KINDS,
)

if TYPE_CHECKING:  # the queries load the catalog: only when a command runs
    from tokenshare.analysts.queries import Query, ShareTable

SPARKS = "▁▂▃▄▅▆▇█"
T = TypeVar("T")


# --- plumbing ----------------------------------------------------------------------


def runner(ctx: Context) -> tuple[Query, str]:
    """(query callable over the read-only query path, database); errors exit with a next step."""

    def query(sql: str, parameters: dict[str, Any]) -> list[list[Any]]:
        return query_or_fail(ctx, sql, parameters).rows

    return query, ctx.settings().clickhouse_database


def call(what: Callable[[], T]) -> T:
    """Run a query function; a refused name (allowlists) exits with the allowed ones."""
    try:
        return what()
    except ValueError as exc:
        fail(str(exc), "see --help for the allowed values")


def require(found: Sequence[Any] | dict[Any, Any], what: str) -> None:
    if not found:
        fail(f"no {what} yet", NO_DATA_HINT)


def require_alerts(found: Sequence[Any], what: str, more: str = "") -> None:
    """Exit when no `what` are stored: they come from the share stage of a worker."""
    if not found:
        fail(
            f"no {what} stored (with these filters)",
            "alerts come from a running `tokenshare worker`; " + NO_DATA_HINT + more,
        )


def sparkline(values: Sequence[float]) -> str:
    """▁..█ per value, scaled from 0 to the row's maximum (flat at zero stays ▁)."""
    top = max(values, default=0.0)
    if top <= 0:
        return SPARKS[0] * len(values)
    return "".join(
        SPARKS[min(len(SPARKS) - 1, int(v / top * (len(SPARKS) - 1) + 0.5))] for v in values
    )


def _pct(share: float) -> str:
    return f"{share * 100:.1f}%"


def _amount(value: float, measure: str) -> str:
    if measure == "spend_usd":
        return f"${value:,.2f}"
    return f"{value:,.0f}"


def _day(d: date) -> str:
    return f"{d.day} {d:%b}"


def _grid(title: str, *columns: str) -> Table:
    """A table titled on the left, with these (left-aligned) columns to begin with."""
    grid = Table(title=title, title_justify="left")
    for name in columns:
        grid.add_column(name)
    return grid


def dimension_option(help: str, default: str | None = None) -> Callable[[FC], FC]:
    """``--by DIMENSION``: with a default (shown in --help), or optional."""
    if default is None:
        return click.option("--by", "dimension", type=click.Choice(DIMENSIONS), help=help)
    return click.option(
        "--by",
        "dimension",
        default=default,
        show_default=True,
        type=click.Choice(DIMENSIONS),
        help=help,
    )


by_option = dimension_option("Dimension to share out.", "origin_bloc")
status_option = click.option("--status", type=click.Choice(STATUSES), help="Only this status.")
measure_option = click.option(
    "--measure",
    default="tokens",
    show_default=True,
    type=click.Choice(ANALYST_MEASURES),
    help="What a share is a share of.",
)
exclude_option = click.option(
    "--exclude-unidentified",
    is_flag=True,
    help="Leave out traffic the model catalog cannot place: the 'unidentified' value, and "
    "authors and models of no known lab (stealth models); shares of known values.",
)
where_option = click.option(
    "--where",
    "where",
    multiple=True,
    metavar="DIMENSION=VALUE",
    help="Only traffic with this value (repeatable, all must hold), e.g. weights=open.",
)


def parse_where(items: Sequence[str]) -> dict[str, str]:
    """`dimension=value` pairs; a bad one exits saying how to write it."""
    found: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in DIMENSIONS or not value:
            fail(
                f"--where {item!r} is not DIMENSION=VALUE",
                f"write e.g. --where weights=open; dimensions: {', '.join(DIMENSIONS)}",
            )
        found[name] = value
    return found


# --- tables ------------------------------------------------------------------------


@click.command()
@by_option
@click.option("--weeks", default=12, show_default=True, type=click.IntRange(1, 520))
@measure_option
@exclude_option
@click.option(
    "--rolling",
    is_flag=True,
    help="7-day windows ending on the latest day (and every 7 days before) instead of ISO weeks.",
)
@click.option(
    "--top",
    default=15,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Rows: the values with the highest peak share; the rest in one 'other' row "
    "(table only: csv and json carry every value).",
)
@where_option
@format_option
@click.pass_obj
def shares(
    ctx: Context,
    dimension: str,
    weeks: int,
    measure: str,
    exclude_unidentified: bool,
    rolling: bool,
    top: int,
    where: tuple[str, ...],
    fmt: str,
) -> None:
    """Weekly shares of a dimension's values: one row per value, one column per week
    (percent; the week's leader in bold) and a sparkline of the trend. With --where,
    shares within a segment (China-origin against rest-of-world open models).

    \b
    Examples:
      tokenshare shares --by origin_bloc --weeks 12
      tokenshare shares --by origin_bloc --where weights=open
      tokenshare shares --by model --measure spend_usd --exclude-unidentified
      tokenshare shares --by weights --rolling --format csv
    """
    from tokenshare.analysts.queries import ShareTable, weekly_shares

    query, db = runner(ctx)
    segment = parse_where(where)
    points = call(
        lambda: weekly_shares(query, db, dimension, weeks=weeks, measure=measure,
                              exclude_unidentified=exclude_unidentified, rolling=rolling,
                              where=segment)
    )  # fmt: skip
    require(points, f"shares of {dimension}" + (f" where {', '.join(where)}" if where else ""))
    full = ShareTable.pivot(points)
    kind = "7-day windows ending" if rolling else "ISO weeks starting"
    what = ", known values only" if exclude_unidentified else ""
    within = f" within {', '.join(where)}" if where else ""
    title = f"Share of {measure} by {dimension}{within} (%{what}), {kind}"
    report = Report(title, ("period", dimension, "share"), [tuple(p) for p in points])
    emit(fmt, report, share_grid(full.top(top), dimension, title, set(full.shares)))


def share_grid(table: ShareTable, dimension: str, title: str, values: set[str]) -> Table:
    """The table as a rich grid; each period's largest of `values` (not a folded
    'other' row) in bold, so leader changes stand out."""
    grid = _grid(title, dimension)
    for period in table.periods:
        grid.add_column(f"{period:%Y}\n{_day(period)}", justify="right")
    grid.add_column("trend")
    real = [v for v in table.shares if v in values] or list(table.shares)
    leaders = [max(real, key=lambda v: table.shares[v][i]) for i in range(len(table.periods))]
    for value, row in table.shares.items():
        cells = [f"{s * 100:.1f}" for s in row]
        cells = [f"[bold]{c}[/]" if leaders[i] == value else c for i, c in enumerate(cells)]
        grid.add_row(value, *cells, sparkline(row))
    return grid


@click.command()
@dimension_option("Only this dimension.")
@status_option
@click.option("--kind", type=click.Choice(WINDOW_KINDS), help="Only ISO weeks or rolling windows.")
@click.option(
    "--limit",
    default=40,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Show the newest N.",
)
@format_option
@click.pass_obj
def crossovers(
    ctx: Context,
    dimension: str | None,
    status: str | None,
    kind: str | None,
    limit: int,
    fmt: str,
) -> None:
    """Crossovers the share stage found: which value overtook which, when, by how much.

    \b
    Examples:
      tokenshare crossovers
      tokenshare crossovers --by origin_bloc --status final
      tokenshare crossovers --by model --kind iso_week --format csv
    """
    from tokenshare.analysts.queries import Crossover
    from tokenshare.analysts.queries import crossovers as find

    query, db = runner(ctx)
    found = call(
        lambda: find(query, db, dimension=dimension, status=status, window_kind=kind, limit=limit)
    )
    require_alerts(
        found,
        "crossover alerts",
        ", or plot shares: `tokenshare plot shares` marks leader changes itself",
    )
    title = f"Newest {len(found)} crossovers, oldest first"
    grid = _grid(title, "window", "kind", "status", "dimension", "measure", "leader", "overtaken")
    grid.add_column("margin", justify="right")
    for c in found:
        grid.add_row(c.window_label, c.window_kind, c.status, c.dimension, c.measure,
                     f"[bold]{c.leader}[/]", c.overtaken, f"{c.margin_pp:.1f} pp")  # fmt: skip
    emit(fmt, Report(title, Crossover._fields, [tuple(c) for c in found]), grid)


@click.command()
@click.option("--rule", type=click.Choice(RULES), help="Only this rule.")
@status_option
@dimension_option("Only this dimension.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100_000))
@format_option
@click.pass_obj
def alerts(
    ctx: Context,
    rule: str | None,
    status: str | None,
    dimension: str | None,
    limit: int,
    fmt: str,
) -> None:
    """The newest alerts of the share stage (crossovers, thresholds, concentration,
    jumps, rank changes), newest window first.

    \b
    Examples:
      tokenshare alerts
      tokenshare alerts --rule threshold --status final --limit 50
      tokenshare alerts --rule jump --by model --format json
    """
    from tokenshare.analysts.queries import AlertRow
    from tokenshare.analysts.queries import alerts as newest

    query, db = runner(ctx)
    found = call(
        lambda: newest(query, db, rule=rule, status=status, dimension=dimension, limit=limit)
    )
    require_alerts(found, "alerts")
    title = f"Newest {len(found)} alerts"
    grid = _grid(title, "window", "rule", "status", "dimension", "alert")
    for a in found:
        grid.add_row(a.window_label, a.rule, a.status, a.dimension, a.text)
    emit(fmt, Report(title, AlertRow._fields, [tuple(a) for a in found]), grid)


@click.command()
@by_option
@click.option("--weeks", default=4, show_default=True, type=click.IntRange(1, 520))
@measure_option
@exclude_option
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000))
@format_option
@click.pass_obj
def top(
    ctx: Context,
    dimension: str,
    weeks: int,
    measure: str,
    exclude_unidentified: bool,
    limit: int,
    fmt: str,
) -> None:
    """The largest values of a dimension over the last weeks, with their share.

    \b
    Examples:
      tokenshare top --by model
      tokenshare top --by author --weeks 12 --measure spend_usd
      tokenshare top --by category --measure requests --limit 5 --format csv
    """
    from tokenshare.analysts.queries import top_values

    query, db = runner(ctx)
    found = call(
        lambda: top_values(query, db, dimension, weeks=weeks, measure=measure, limit=limit,
                           exclude_unidentified=exclude_unidentified)
    )  # fmt: skip
    require(found, f"traffic by {dimension}")
    if not any(v.total for v in found):
        fail(
            f"no {measure} recorded by {dimension} in the last {weeks} weeks",
            "spend needs cost_usd on the events; try --measure tokens or more --weeks",
        )
    title = f"Top {dimension} by {measure}, last {weeks} ISO weeks"
    grid = _grid(title)
    grid.add_column("#", justify="right")
    grid.add_column(dimension)
    grid.add_column(measure, justify="right")
    grid.add_column("share", justify="right")
    grid.add_column("")
    peak = max(v.share for v in found)
    for rank, v in enumerate(found, 1):
        bar = "█" * max(1, round(v.share / peak * 30)) if peak > 0 else ""
        grid.add_row(str(rank), v.value, _amount(v.total, measure), _pct(v.share), bar)
    rows = [(rank, v.value, v.total, v.share) for rank, v in enumerate(found, 1)]
    emit(fmt, Report(title, ("rank", dimension, measure, "share"), rows), grid)


model_option = click.option(
    "--model", required=True, help="Model slug, e.g. deepseek/deepseek-v3.2."
)
users_option = click.option("--users", is_flag=True, help="Cohorts of users instead of apps.")


@click.command()
@model_option
@users_option
@click.option(
    "--weeks",
    default=8,
    show_default=True,
    type=click.IntRange(1, 520),
    help="Follow each cohort this many weeks after its first.",
)
@click.option(
    "--monthly",
    is_flag=True,
    help="Calendar-month cohorts, with how many came back after a month away.",
)
@format_option
@click.pass_obj
def retention(ctx: Context, model: str, users: bool, weeks: int, monthly: bool, fmt: str) -> None:
    """Do apps (or users) stay with a model? A cohort matrix: one row per first-use
    week (or month), the share still active 1, 2, ... weeks (months) later.

    \b
    Examples:
      tokenshare retention --model deepseek/deepseek-v3.2
      tokenshare retention --model anthropic/claude-4.6-sonnet --users --weeks 12
      tokenshare retention --model deepseek/deepseek-v3.2 --monthly --format csv
    """
    from tokenshare.analysts.queries import retention as cohorts

    query, db = runner(ctx)
    slug, members = _cohorts_of(model, users)
    if monthly:
        _monthly_retention(query, db, slug, members, fmt)
        return
    matrix = call(lambda: cohorts(query, db, slug, members=members, weeks=weeks))
    if not matrix.cells:
        fail(
            f"no {members} have used {slug} (retention counts events with "
            f"{'user_id' if users else 'app_id'})",
            "check the slug with `tokenshare top --by model --weeks 52`; events need "
            f"{'user_id' if users else 'app_id'} for retention; " + NO_DATA_HINT,
        )
    span = min(weeks, max(matrix.observed(c) for c in matrix.cohorts))
    title = f"Retention of {members} using {slug}"
    grid = _cohort_grid(title, "first week", members, span)
    for cohort in matrix.cohorts:
        seen = matrix.observed(cohort)
        cells = [
            _pct(matrix.cells.get((cohort, a), (0, 0.0))[1]) if a <= seen else "·"
            for a in range(span + 1)
        ]
        grid.add_row(f"{_day(cohort)} {cohort:%Y}", str(matrix.cohort_sizes[cohort]), *cells)
    rows = [
        (cohort, after, matrix.cohort_sizes[cohort], active, share)
        for (cohort, after), (active, share) in sorted(matrix.cells.items())
        if after <= span
    ]
    columns = ("cohort_week", "weeks_after", "cohort_size", "active", "retention")
    emit(fmt, Report(title, columns, rows, ("[dim]· = not observed yet[/]",)), grid)


def _monthly_retention(query: Query, db: str, slug: str, members: str, fmt: str) -> None:
    """Month cohorts: retention per month after, and the returning members in brackets."""
    from tokenshare.analysts.study import MonthlyRetention, monthly_retention

    found = call(lambda: monthly_retention(query, db, slug, members=members))
    if not found:
        fail(f"no {members} have used {slug}", "check the slug with `tokenshare top --by model`")
    span = max(r.months_after for r in found)
    title = f"Monthly retention of {members} using {slug}"
    grid = _cohort_grid(title, "first month", members, span)
    cohorts: dict[date, dict[int, MonthlyRetention]] = {}
    for r in found:
        cohorts.setdefault(r.cohort_month, {})[r.months_after] = r
    for cohort, row in cohorts.items():
        size = next(iter(row.values())).cohort_size
        cells = [
            f"{_pct(row[a].retention)} ({row[a].returning})" if a in row and row[a].returning
            else _pct(row[a].retention) if a in row else "·"
            for a in range(span + 1)
        ]  # fmt: skip
        grid.add_row(f"{cohort:%b %Y}", str(size), *cells)
    notes = ("[dim](n) = back after a month or more away; · = not observed yet[/]",)
    emit(fmt, Report(title, MonthlyRetention._fields, [tuple(r) for r in found], notes), grid)


def _cohort_grid(title: str, first: str, members: str, span: int) -> Table:
    """A cohort matrix: the first period, the cohort's size, then +0 .. +span."""
    grid = _grid(title, first)
    grid.add_column(members, justify="right")
    for after in range(span + 1):
        grid.add_column(f"+{after}", justify="right")
    return grid


def _cohorts_of(model: str, users: bool) -> tuple[str, str]:
    """(the catalog's canonical slug, "users" or "apps"): whose cohorts of what."""
    return _canonical(model), "users" if users else "apps"


def _canonical(slug: str) -> str:
    """The catalog's canonical slug (date tags and :free-style suffixes removed)."""
    from tokenshare.schema.catalog import Catalog

    return Catalog.load().lookup(slug).model


# --- plots -------------------------------------------------------------------------


@click.group()
def plot() -> None:
    """Charts (PNG) of share shifts, concentration, retention and cost against volume.

    \b
    Examples:
      tokenshare plot shares --by origin_bloc -o shares.png
      tokenshare plot concentration --by model -o concentration.png
      tokenshare plot retention --model deepseek/deepseek-v3.2 -o retention.png
      tokenshare plot prices --by category -o quadrants.png
    """


output_option = click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="PNG file to write.",
)
all_weeks_option = click.option(
    "--weeks", type=click.IntRange(1, 520), help="Only the last N ISO weeks (default: all)."
)


@plot.command("shares")
@by_option
@output_option
@click.option("--style", default="line", show_default=True, type=click.Choice(["line", "stacked"]))
@exclude_option
@measure_option
@all_weeks_option
@click.option(
    "--top",
    default=8,
    show_default=True,
    type=click.IntRange(1, 30),
    help="Values drawn: those with the highest peak share (stacked: the rest as 'other').",
)
@where_option
@format_option
@click.pass_obj
def plot_shares_command(
    ctx: Context,
    dimension: str,
    output: Path,
    style: str,
    exclude_unidentified: bool,
    measure: str,
    weeks: int | None,
    top: int,
    where: tuple[str, ...],
    fmt: str,
) -> None:
    """Weekly shares of a dimension's values, with crossovers marked (from the
    crossover alerts; without alerts, where the leader changes).

    \b
    Examples:
      tokenshare plot shares --by origin_bloc -o shares.png
      tokenshare plot shares --by weights --style stacked -o weights.png
      tokenshare plot shares --by model --exclude-unidentified --weeks 12 -o models.png
      tokenshare plot shares --by origin_bloc --where weights=open -o open.png
    """
    _need_matplotlib()
    from tokenshare.analysts.plots import plot_shares
    from tokenshare.analysts.queries import crossovers, weekly_shares

    query, db = runner(ctx)
    segment = parse_where(where)
    points = call(
        lambda: weekly_shares(query, db, dimension, weeks=weeks, measure=measure,
                              exclude_unidentified=exclude_unidentified, where=segment)
    )  # fmt: skip
    require(points, f"shares of {dimension}")
    # The share stage's crossovers are of whole-market shares: a segment finds its own.
    marks = (
        []
        if segment
        else crossovers(query, db, dimension=dimension, status="final", window_kind="iso_week")
    )
    info = plot_shares(points, dimension, output, "stacked" if style == "stacked" else "line",
                             marks, measure=measure, exclude_unidentified=exclude_unidentified,
                             top=top)  # fmt: skip
    notes = [f"  {_day(week)} {week:%Y}: {text}" for week, text in info.annotations]
    notes.append(f"[dim]markers from the {info.crossover_source}[/]")
    markers = "; ".join(f"{week.isoformat()} {text}" for week, text in info.annotations)
    what = f"{len(info.series)} series, {len(info.annotations)} crossover markers"
    _wrote(fmt, info.path, what, notes, markers)


@plot.command("concentration")
@dimension_option("Dimension whose concentration to draw.", "model")
@output_option
@all_weeks_option
@click.option(
    "--level",
    default=0.25,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Top-1 share level to draw (the concentration rule's default).",
)
@format_option
@click.pass_obj
def plot_concentration_command(
    ctx: Context, dimension: str, output: Path, weeks: int | None, level: float, fmt: str
) -> None:
    """Top-1 share and HHI of a dimension per ISO week, with a reference level.

    \b
    Examples:
      tokenshare plot concentration --by model -o concentration.png
      tokenshare plot concentration --by author --level 0.4 -o labs.png
    """
    _need_matplotlib()
    from tokenshare.analysts.plots import plot_concentration
    from tokenshare.analysts.queries import concentration

    query, db = runner(ctx)
    points = call(lambda: concentration(query, db, dimension, weeks=weeks))
    require(points, f"concentration figures of {dimension}")
    info = plot_concentration(points, dimension, output, level)
    _wrote(fmt, info.path, f"{len(points)} weeks, {len(info.annotations)} top-1 labels")


@plot.command("retention")
@model_option
@output_option
@users_option
@click.option("--weeks", type=click.IntRange(1, 520), help="Follow cohorts N weeks (default: all).")
@click.option(
    "--cohorts",
    default=10,
    show_default=True,
    type=click.IntRange(1, 50),
    help="Cohort lines drawn (the largest); the average counts them all.",
)
@format_option
@click.pass_obj
def plot_retention_command(
    ctx: Context,
    model: str,
    output: Path,
    users: bool,
    weeks: int | None,
    cohorts: int,
    fmt: str,
) -> None:
    """Retention of a model's apps (or users): one line per first-use cohort against
    weeks after, and the weighted average in bold.

    \b
    Examples:
      tokenshare plot retention --model deepseek/deepseek-v3.2 -o retention.png
      tokenshare plot retention --model qwen/qwen3.6-plus --users --weeks 8 -o users.png
    """
    _need_matplotlib()
    from tokenshare.analysts.plots import plot_retention
    from tokenshare.analysts.queries import retention

    query, db = runner(ctx)
    slug, members = _cohorts_of(model, users)
    matrix = call(lambda: retention(query, db, slug, members=members, weeks=weeks))
    if not matrix.cells:
        fail(
            f"no {members} have used {slug}",
            "check the slug with `tokenshare top --by model --weeks 52`; " + NO_DATA_HINT,
        )
    info = plot_retention(matrix, output, max_cohorts=cohorts)
    _wrote(fmt, info.path, f"{len(matrix.cohorts)} cohorts, {len(info.series) - 1} drawn")


@plot.command("prices")
@dimension_option("Whose cost and volume to draw.", "category")
@output_option
@format_option
@click.pass_obj
def plot_prices_command(ctx: Context, dimension: str, output: Path, fmt: str) -> None:
    """Cost against volume, log-log: one point per value, the four quadrants split at
    the medians, and the fitted price elasticity.

    \b
    Examples:
      tokenshare plot prices -o quadrants.png
      tokenshare plot prices --by author -o labs.png
    """
    _need_matplotlib()
    from tokenshare.analysts.plots import plot_prices
    from tokenshare.analysts.study import elasticity, prices

    query, db = runner(ctx)
    points = call(lambda: prices(query, db, dimension))
    require(points, f"traffic by {dimension}")
    info = call(lambda: plot_prices(points, elasticity(query, db, dimension), dimension, output))
    _wrote(fmt, info.path, f"{len(info.series)} values; {info.note}")


def _need_matplotlib() -> None:
    """Exit saying how to install matplotlib when it is missing (it is a dependency)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        fail(f"plots need matplotlib ({exc})", "install it: `.venv/bin/pip install matplotlib`")


def _wrote(
    fmt: str, path: Path, what: str, notes: Sequence[str] = (), markers: str | None = None
) -> None:
    """Say which file a plot wrote and what it holds (csv/json: one row)."""
    columns: tuple[str, ...] = ("file", "drawn")
    row: tuple[str, ...] = (str(path), what)
    if markers is not None:
        columns, row = (*columns, "markers"), (*row, markers)
    report = Report(f"wrote {path}", columns, [row], notes)
    emit(fmt, report, f"wrote [bold]{path}[/] ({what})")
