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
from rich.console import Console
from rich.table import Table

from tokenshare.cli.context import Context, fail
from tokenshare.cli.query import NO_DATA_HINT, query_or_fail
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

out = Console()


# --- plumbing ----------------------------------------------------------------------


def _runner(ctx: Context) -> tuple[Query, str]:
    """(query callable over the read-only query path, database); errors exit with a next step."""

    def query(sql: str, parameters: dict[str, Any]) -> list[list[Any]]:
        return query_or_fail(ctx, sql, parameters).rows

    return query, ctx.settings().clickhouse_database


def _call(what: Callable[[], T]) -> T:
    """Run a query function; a refused name (allowlists) exits with the allowed ones."""
    try:
        return what()
    except ValueError as exc:
        fail(str(exc), "see --help for the allowed values")


def _require(found: Sequence[Any] | dict[Any, Any], what: str) -> None:
    if not found:
        fail(f"no {what} yet", NO_DATA_HINT)


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


by_option = click.option(
    "--by",
    "dimension",
    default="origin_bloc",
    show_default=True,
    type=click.Choice(DIMENSIONS),
    help="Dimension to share out.",
)
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
    help="Leave out traffic the model catalog cannot place (shares of known values).",
)


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
    help="Rows: the values with the highest peak share; the rest in one 'other' row.",
)
@click.pass_obj
def shares(
    ctx: Context,
    dimension: str,
    weeks: int,
    measure: str,
    exclude_unidentified: bool,
    rolling: bool,
    top: int,
) -> None:
    """Weekly shares of a dimension's values: one row per value, one column per week
    (percent; the week's leader in bold) and a sparkline of the trend.

    \b
    Examples:
      tokenshare shares --by origin_bloc --weeks 12
      tokenshare shares --by model --measure spend_usd --exclude-unidentified
      tokenshare shares --by weights --rolling
    """
    from tokenshare.analysts.queries import ShareTable, weekly_shares

    query, db = _runner(ctx)
    points = _call(
        lambda: weekly_shares(query, db, dimension, weeks=weeks, measure=measure,
                              exclude_unidentified=exclude_unidentified, rolling=rolling)
    )  # fmt: skip
    _require(points, f"shares of {dimension}")
    full = ShareTable.pivot(points)
    kind = "7-day windows ending" if rolling else "ISO weeks starting"
    what = ", known values only" if exclude_unidentified else ""
    title = f"Share of {measure} by {dimension} (%{what}), {kind}"
    out.print(share_grid(full.top(top), dimension, title, set(full.shares)))


def share_grid(table: ShareTable, dimension: str, title: str, values: set[str]) -> Table:
    """The table as a rich grid; each period's largest of `values` (not a folded
    'other' row) in bold, so leader changes stand out."""
    grid = Table(title=title, title_justify="left")
    grid.add_column(dimension)
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
@click.option("--by", "dimension", type=click.Choice(DIMENSIONS), help="Only this dimension.")
@click.option("--status", type=click.Choice(STATUSES), help="Only this status.")
@click.option("--kind", type=click.Choice(WINDOW_KINDS), help="Only ISO weeks or rolling windows.")
@click.option(
    "--limit",
    default=40,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Show the newest N.",
)
@click.pass_obj
def crossovers(
    ctx: Context, dimension: str | None, status: str | None, kind: str | None, limit: int
) -> None:
    """Crossovers the share stage found: which value overtook which, when, by how much.

    \b
    Examples:
      tokenshare crossovers
      tokenshare crossovers --by origin_bloc --status final
      tokenshare crossovers --by model --kind iso_week
    """
    from tokenshare.analysts.queries import crossovers as find

    query, db = _runner(ctx)
    found = _call(
        lambda: find(query, db, dimension=dimension, status=status, window_kind=kind, limit=limit)
    )
    if not found:
        fail(
            "no crossover alerts stored (with these filters)",
            "alerts come from a running `tokenshare worker`; "
            + NO_DATA_HINT
            + ", or plot shares: `tokenshare plot shares` marks leader changes itself",
        )
    grid = Table(title=f"Newest {len(found)} crossovers, oldest first", title_justify="left")
    for name in ("window", "kind", "status", "dimension", "measure", "leader", "overtaken"):
        grid.add_column(name)
    grid.add_column("margin", justify="right")
    for c in found:
        grid.add_row(c.window_label, c.window_kind, c.status, c.dimension, c.measure,
                     f"[bold]{c.leader}[/]", c.overtaken, f"{c.margin_pp:.1f} pp")  # fmt: skip
    out.print(grid)


@click.command()
@click.option("--rule", type=click.Choice(RULES), help="Only this rule.")
@click.option("--status", type=click.Choice(STATUSES), help="Only this status.")
@click.option("--by", "dimension", type=click.Choice(DIMENSIONS), help="Only this dimension.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100_000))
@click.pass_obj
def alerts(
    ctx: Context, rule: str | None, status: str | None, dimension: str | None, limit: int
) -> None:
    """The newest alerts of the share stage (crossovers, thresholds, concentration,
    jumps, rank changes), newest window first.

    \b
    Examples:
      tokenshare alerts
      tokenshare alerts --rule threshold --status final --limit 50
      tokenshare alerts --rule jump --by model
    """
    from tokenshare.analysts.queries import alerts as newest

    query, db = _runner(ctx)
    found = _call(
        lambda: newest(query, db, rule=rule, status=status, dimension=dimension, limit=limit)
    )
    if not found:
        fail(
            "no alerts stored (with these filters)",
            "alerts come from a running `tokenshare worker`; " + NO_DATA_HINT,
        )
    grid = Table(title=f"Newest {len(found)} alerts", title_justify="left")
    for name in ("window", "rule", "status", "dimension", "alert"):
        grid.add_column(name)
    for a in found:
        grid.add_row(a.window_label, a.rule, a.status, a.dimension, a.text)
    out.print(grid)


@click.command()
@by_option
@click.option("--weeks", default=4, show_default=True, type=click.IntRange(1, 520))
@measure_option
@exclude_option
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.pass_obj
def top(
    ctx: Context,
    dimension: str,
    weeks: int,
    measure: str,
    exclude_unidentified: bool,
    limit: int,
) -> None:
    """The largest values of a dimension over the last weeks, with their share.

    \b
    Examples:
      tokenshare top --by model
      tokenshare top --by author --weeks 12 --measure spend_usd
      tokenshare top --by category --measure requests --limit 5
    """
    from tokenshare.analysts.queries import top_values

    query, db = _runner(ctx)
    found = _call(
        lambda: top_values(query, db, dimension, weeks=weeks, measure=measure, limit=limit,
                           exclude_unidentified=exclude_unidentified)
    )  # fmt: skip
    _require(found, f"traffic by {dimension}")
    if not any(v.total for v in found):
        fail(
            f"no {measure} recorded by {dimension} in the last {weeks} weeks",
            "spend needs cost_usd on the events; try --measure tokens or more --weeks",
        )
    grid = Table(
        title=f"Top {dimension} by {measure}, last {weeks} ISO weeks", title_justify="left"
    )
    grid.add_column("#", justify="right")
    grid.add_column(dimension)
    grid.add_column(measure, justify="right")
    grid.add_column("share", justify="right")
    grid.add_column("")
    peak = max(v.share for v in found)
    for rank, v in enumerate(found, 1):
        bar = "█" * max(1, round(v.share / peak * 30)) if peak > 0 else ""
        grid.add_row(str(rank), v.value, _amount(v.total, measure), _pct(v.share), bar)
    out.print(grid)


@click.command()
@click.option("--model", required=True, help="Model slug, e.g. deepseek/deepseek-v3.2.")
@click.option("--users", is_flag=True, help="Cohorts of users instead of apps.")
@click.option(
    "--weeks",
    default=8,
    show_default=True,
    type=click.IntRange(1, 520),
    help="Follow each cohort this many weeks after its first.",
)
@click.pass_obj
def retention(ctx: Context, model: str, users: bool, weeks: int) -> None:
    """Do apps (or users) stay with a model? A cohort matrix: one row per first-use
    week, the share still active 1, 2, ... weeks later.

    \b
    Examples:
      tokenshare retention --model deepseek/deepseek-v3.2
      tokenshare retention --model anthropic/claude-4.6-sonnet --users --weeks 12
    """
    from tokenshare.analysts.queries import retention as cohorts

    query, db = _runner(ctx)
    slug = _canonical(model)
    members = "users" if users else "apps"
    matrix = _call(lambda: cohorts(query, db, slug, members=members, weeks=weeks))
    if not matrix.cells:
        fail(
            f"no {members} have used {slug} (retention counts events with "
            f"{'user_id' if users else 'app_id'})",
            "check the slug with `tokenshare top --by model --weeks 52`; events need "
            f"{'user_id' if users else 'app_id'} for retention; " + NO_DATA_HINT,
        )
    span = min(weeks, max(matrix.observed(c) for c in matrix.cohorts))
    grid = Table(title=f"Retention of {members} using {slug}", title_justify="left")
    grid.add_column("first week")
    grid.add_column(members, justify="right")
    for after in range(span + 1):
        grid.add_column(f"+{after}", justify="right")
    for cohort in matrix.cohorts:
        seen = matrix.observed(cohort)
        cells = [
            _pct(matrix.cells.get((cohort, a), (0, 0.0))[1]) if a <= seen else "·"
            for a in range(span + 1)
        ]
        grid.add_row(f"{_day(cohort)} {cohort:%Y}", str(matrix.cohort_sizes[cohort]), *cells)
    out.print(grid)
    out.print("[dim]· = not observed yet[/]")


def _canonical(slug: str) -> str:
    """The catalog's canonical slug (date tags and :free-style suffixes removed)."""
    from tokenshare.schema.catalog import Catalog

    return Catalog.load().lookup(slug).model


# --- plots -------------------------------------------------------------------------


@click.group()
def plot() -> None:
    """Charts (PNG) of share shifts, concentration and retention.

    \b
    Examples:
      tokenshare plot shares --by origin_bloc -o shares.png
      tokenshare plot concentration --by model -o concentration.png
      tokenshare plot retention --model deepseek/deepseek-v3.2 -o retention.png
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
) -> None:
    """Weekly shares of a dimension's values, with crossovers marked (from the
    crossover alerts; without alerts, where the leader changes).

    \b
    Examples:
      tokenshare plot shares --by origin_bloc -o shares.png
      tokenshare plot shares --by weights --style stacked -o weights.png
      tokenshare plot shares --by model --exclude-unidentified --weeks 12 -o models.png
    """
    _need_matplotlib()
    from tokenshare.analysts.plots import plot_shares
    from tokenshare.analysts.queries import crossovers, weekly_shares

    query, db = _runner(ctx)
    points = _call(
        lambda: weekly_shares(query, db, dimension, weeks=weeks, measure=measure,
                              exclude_unidentified=exclude_unidentified)
    )  # fmt: skip
    _require(points, f"shares of {dimension}")
    marks = crossovers(query, db, dimension=dimension, status="final", window_kind="iso_week")
    info = plot_shares(points, dimension, output, "stacked" if style == "stacked" else "line",
                             marks, measure=measure, exclude_unidentified=exclude_unidentified,
                             top=top)  # fmt: skip
    _wrote(info.path, f"{len(info.series)} series, {len(info.annotations)} crossover markers")
    for week, text in info.annotations:
        out.print(f"  {_day(week)} {week:%Y}: {text}")
    out.print(f"[dim]markers from the {info.crossover_source}[/]")


@plot.command("concentration")
@click.option(
    "--by",
    "dimension",
    default="model",
    show_default=True,
    type=click.Choice(DIMENSIONS),
    help="Dimension whose concentration to draw.",
)
@output_option
@all_weeks_option
@click.option(
    "--level",
    default=0.25,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Top-1 share level to draw (the concentration rule's default).",
)
@click.pass_obj
def plot_concentration_command(
    ctx: Context, dimension: str, output: Path, weeks: int | None, level: float
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

    query, db = _runner(ctx)
    points = _call(lambda: concentration(query, db, dimension, weeks=weeks))
    _require(points, f"concentration figures of {dimension}")
    info = plot_concentration(points, dimension, output, level)
    _wrote(info.path, f"{len(points)} weeks, {len(info.annotations)} top-1 labels")


@plot.command("retention")
@click.option("--model", required=True, help="Model slug, e.g. deepseek/deepseek-v3.2.")
@output_option
@click.option("--users", is_flag=True, help="Cohorts of users instead of apps.")
@click.option("--weeks", type=click.IntRange(1, 520), help="Follow cohorts N weeks (default: all).")
@click.option(
    "--cohorts",
    default=10,
    show_default=True,
    type=click.IntRange(1, 50),
    help="Cohort lines drawn (the largest); the average counts them all.",
)
@click.pass_obj
def plot_retention_command(
    ctx: Context, model: str, output: Path, users: bool, weeks: int | None, cohorts: int
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

    query, db = _runner(ctx)
    slug = _canonical(model)
    members = "users" if users else "apps"
    matrix = _call(lambda: retention(query, db, slug, members=members, weeks=weeks))
    if not matrix.cells:
        fail(
            f"no {members} have used {slug}",
            "check the slug with `tokenshare top --by model --weeks 52`; " + NO_DATA_HINT,
        )
    info = plot_retention(matrix, output, max_cohorts=cohorts)
    _wrote(info.path, f"{len(matrix.cohorts)} cohorts, {len(info.series) - 1} drawn")


def _need_matplotlib() -> None:
    """Exit saying how to install matplotlib when it is missing (it is a dependency)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        fail(f"plots need matplotlib ({exc})", "install it: `.venv/bin/pip install matplotlib`")


def _wrote(path: Path, what: str) -> None:
    out.print(f"wrote [bold]{path}[/] ({what})")
