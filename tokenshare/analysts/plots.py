"""Charts of share shifts, concentration and retention, as PNG files.

matplotlib's object API on the Agg canvas only (no pyplot, no display): safe in
a headless process and in threads. Every plot function returns a ``PlotInfo``
saying what was drawn, so tests (and callers) can check a chart without
looking at pixels.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import pairwise
from pathlib import Path
from typing import Generic, Literal, TypeVar

from matplotlib import colormaps
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from tokenshare.analysts.queries import (
    ConcentrationPoint,
    Crossover,
    RetentionMatrix,
    SharePoint,
    ShareTable,
)
from tokenshare.analysts.study import Elasticity, PricePoint
from tokenshare.schema.catalog import UNIDENTIFIED

X = TypeVar("X", date, int, float)
Style = Literal["line", "stacked"]

#: Where crossover markers came from (PlotInfo.crossover_source).
FROM_VIEW = "crossovers view (final ISO-week alerts)"
FROM_SHARES = "leader changes in the plotted shares (no crossover alerts stored yet)"

#: Fixed colours for the values people compare most, so charts agree with each other.
KNOWN_COLOURS = {
    "China": "#d62728",
    "US": "#1f77b4",
    "EU": "#2ca02c",
    "open": "#ff7f0e",
    "closed": "#1f77b4",
    UNIDENTIFIED: "#9e9e9e",
}
PALETTE = ["#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#ff7f0e", "#2ca02c",
           "#7f7f7f", "#1f77b4", "#d62728", "#aec7e8", "#ffbb78"]  # fmt: skip
OTHER_COLOUR = "#cfcfcf"
#: Up to this many crossover labels are written across; more are written along their line.
_FLAT_LABELS = 6
#: The weighted average retention is drawn only where this many cohorts are observed.
_MIN_COHORTS = 3
_LABEL_BOX = {"boxstyle": "round,pad=0.2", "fc": "white", "ec": "#999999", "lw": 0.6}
_EPOCH = date(1970, 1, 1)
_WEEK_AXIS = "ISO week (starting Monday, UTC)"


@dataclass(slots=True)
class PlotInfo(Generic[X]):
    """What a chart shows: its lines, markers and reference levels."""

    path: Path
    title: str
    x_label: str
    y_label: str
    series: dict[str, list[tuple[X, float]]]
    annotations: list[tuple[X, str]] = field(default_factory=list)
    crossover_source: str | None = None  # shares plots only: FROM_VIEW or FROM_SHARES
    reference_lines: list[tuple[str, float]] = field(default_factory=list)
    note: str = ""


# --- shares ------------------------------------------------------------------------


def plot_shares(
    rows: Sequence[SharePoint],
    dimension: str,
    out: Path,
    style: Style = "line",
    crossovers: Sequence[Crossover] = (),
    *,
    measure: str = "tokens",
    exclude_unidentified: bool = False,
    top: int = 8,
) -> PlotInfo[date]:
    """Weekly shares of `dimension`'s values (the `top` with the highest peak), with
    crossovers marked at their week.

    Markers come from `crossovers` (the view's final ISO-week alerts of this
    dimension and measure); when there are none, from the weeks where the
    plotted leader changes, so a chart of a fresh store still shows the shifts.
    """
    if not rows:
        raise ValueError("no shares to plot")
    full = ShareTable.pivot(rows)
    table = full.top(top)
    if style == "line":  # lines compare values; a folded "other" would only dominate
        table = ShareTable(
            table.periods, {v: s for v, s in table.shares.items() if v in full.shares}
        )
    marks, source = _crossover_marks(full, dimension, measure, crossovers)
    left_out = len(full.shares) - sum(1 for v in table.shares if v in full.shares)
    info = PlotInfo[date](
        out,
        f"Share of {measure} by {_words(dimension)}, per ISO week",
        _WEEK_AXIS,
        f"share of {measure}" + (" (known values only)" if exclude_unidentified else ""),
        table.series(),
        marks,
        source,
        note=f"Crossover markers: {source}."
        + (f" {left_out} smaller values not drawn." if left_out and style == "line" else ""),
    )
    fig, ax = _figure()
    colours = _colours(list(table.shares))
    if style == "stacked":
        ax.stackplot(_xs(table.periods), *table.shares.values(), labels=list(table.shares),
                     colors=[colours[v] for v in table.shares], alpha=0.85)  # fmt: skip
        ax.set_ylim(0, 1)
        ax.axhline(0.5, color="white", ls=":", lw=1.2)  # where "A > B" flips for two values
    else:
        for value, shares in table.shares.items():
            ax.plot(_xs(table.periods), shares, label=value, color=colours[value], lw=2.2,
                    marker="o", ms=3.5)  # fmt: skip
        ax.set_ylim(0, min(1.0, max(max(s) for s in table.shares.values()) * 1.15 + 0.02))
    _dated_axis(ax, table.periods)
    _mark_weeks(ax, marks, table.periods)
    _finish(fig, ax, info)
    _save(fig, out)
    return info


def _crossover_marks(
    table: ShareTable, dimension: str, measure: str, crossovers: Sequence[Crossover]
) -> tuple[list[tuple[date, str]], str]:
    """(week, "A > B") per crossover in the plotted weeks, and where they came from."""
    relevant = [
        c
        for c in crossovers
        if c.status == "final" and c.window_kind == "iso_week"
        and c.dimension == dimension and c.measure == measure
    ]  # fmt: skip
    if relevant:
        weeks = set(table.periods)
        marks = {(c.window_start, f"{c.leader} > {c.overtaken}") for c in relevant}
        return sorted(m for m in marks if m[0] in weeks), FROM_VIEW
    return leader_changes(table), FROM_SHARES


def leader_changes(table: ShareTable) -> list[tuple[date, str]]:
    """(period, "new > old") wherever the largest identified value differs from the
    period before's (ties go to the alphabetically first value, as the share stage does)."""
    known = {v: s for v, s in table.shares.items() if v != UNIDENTIFIED}
    if not known:
        return []
    leaders = [min(known, key=lambda v: (-known[v][i], v)) for i in range(len(table.periods))]
    return [
        (table.periods[i], f"{leaders[i]} > {leaders[i - 1]}")
        for i in range(1, len(leaders))
        if leaders[i] != leaders[i - 1]
    ]


def _mark_weeks(ax: Axes, marks: list[tuple[date, str]], weeks: list[date]) -> None:
    """A dashed vertical line and a label per crossover. Few labels are written across,
    staggered so neighbours do not overlap; many are written along their line."""
    flat = len(marks) <= _FLAT_LABELS
    right_edge = _x(weeks[0]) + 0.8 * (_x(weeks[-1]) - _x(weeks[0]))
    for i, (week, text) in enumerate(marks):
        x = _x(week)
        ax.axvline(x, color="#333333", ls="--", lw=1, alpha=0.6, zorder=1)
        if flat:
            left = x > right_edge  # near the legend: write the label on the line's left
            ax.annotate(text, (x, 1), xycoords=("data", "axes fraction"),
                        xytext=(-4 if left else 4, -6 - 15 * (i % 3)), textcoords="offset points",
                        ha="right" if left else "left", va="top", fontsize=9, fontweight="bold",
                        color="#222222", bbox=_LABEL_BOX, zorder=5)  # fmt: skip
        else:
            ax.annotate(_short(text), (x, 1), xycoords=("data", "axes fraction"),
                        xytext=(3, -6), textcoords="offset points", rotation=90, ha="left",
                        va="top", fontsize=7.5, color="#222222", bbox=_LABEL_BOX,
                        zorder=5)  # fmt: skip


def _short(text: str) -> str:
    """'author/model > author/other' -> 'model > other': the legend has the full slugs."""
    return " > ".join(part.rsplit("/", 1)[-1] for part in text.split(" > "))


# --- concentration -----------------------------------------------------------------


def plot_concentration(
    points: Sequence[ConcentrationPoint], dimension: str, out: Path, level: float = 0.25
) -> PlotInfo[date]:
    """Top-1 share (left axis) and HHI (right axis) per week, with the `level` line;
    the top-1 value is labelled at the first week and wherever it changes."""
    if not points:
        raise ValueError("no concentration figures to plot")
    weeks = [p.week for p in points]
    top1 = [p.top1_share for p in points]
    hhi = [p.hhi for p in points]
    leaders = [(points[0].week, points[0].top1_value)] + [
        (b.week, b.top1_value) for a, b in pairwise(points) if a.top1_value != b.top1_value
    ]
    info = PlotInfo[date](
        out,
        f"Concentration by {_words(dimension)}, per ISO week (share of tokens, known values)",
        _WEEK_AXIS,
        "share of the largest value (top-1)",
        {
            "top-1 share": list(zip(weeks, top1, strict=True)),
            "HHI": list(zip(weeks, hhi, strict=True)),
        },
        [(week, f"top-1: {value}") for week, value in leaders],
        reference_lines=[(f"{level:.0%} top-1 level", level)],
        note="Labels: the largest value, from the week it took the lead. "
        "HHI: sum of squared shares (1 = a single value holds everything).",
    )
    fig, ax = _figure()
    ax.plot(_xs(weeks), top1, color="#1f77b4", lw=2.4, marker="o", ms=4, label="top-1 share")
    ax.axhline(level, color="#d62728", ls="--", lw=1.4, label=f"{level:.0%} top-1 level")
    ax.set_ylim(0, max(max(top1), level) * 1.3)
    right = ax.twinx()
    right.plot(_xs(weeks), hhi, color="#ff7f0e", lw=2, ls="-.", marker="s", ms=3,
               label="HHI (right axis)")  # fmt: skip
    for i, (week, value) in enumerate(leaders):
        below = i % 2 == 1  # alternate, so leaders of consecutive weeks stay apart
        # Drawn on the twin (the top layer) at the top-1 point, so the HHI line never covers it.
        right.annotate(_short(value), (_x(week), top1[weeks.index(week)]), xycoords=ax.transData,
                       xytext=(0, -12 if below else 9), textcoords="offset points", ha="center",
                       va="top" if below else "bottom", fontsize=7.5, color="#1f4e79",
                       bbox=_LABEL_BOX, zorder=5)  # fmt: skip
    right.set_ylabel("HHI (0–1)")
    right.set_ylim(0, max(max(hhi), 0.15) * 1.3)
    right.spines["top"].set_visible(False)
    lines, labels = ax.get_legend_handles_labels()
    more_lines, more_labels = right.get_legend_handles_labels()
    _dated_axis(ax, weeks)
    # Inside, top centre: outside on the right it would cover the HHI axis.
    _finish(fig, ax, info, legend=(lines + more_lines, labels + more_labels), inside=True)
    _save(fig, out)
    return info


# --- cost against volume ------------------------------------------------------------


def plot_prices(
    points: Sequence[PricePoint], fit: Elasticity | None, dimension: str, out: Path
) -> PlotInfo[float]:
    """Price per million tokens against tokens, both on log scales, one labelled point
    per value; dashed medians split the four quadrants; the log-log fit as a line."""
    priced = [p for p in points if p.usd_per_mtok > 0 and p.tokens > 0]
    if not priced:
        raise ValueError("no priced traffic to plot")
    mid_price = statistics.median([p.usd_per_mtok for p in priced])
    mid_tokens = statistics.median([float(p.tokens) for p in priced])
    info = PlotInfo[float](
        out,
        f"Cost against volume by {_words(dimension)}",
        "effective price, USD per million tokens (log)",
        "tokens (log)",
        {p.value: [(p.usd_per_mtok, float(p.tokens))] for p in priced},
        [(p.usd_per_mtok, f"{p.value}: {p.quadrant}") for p in priced],
        reference_lines=[("median price", mid_price), ("median tokens", mid_tokens)],
        note=(
            f"Elasticity {fit.elasticity:+.3f} (log-log least squares over {fit.points} values,"
            f" R² {fit.r_squared:.2f}): 10% cheaper, {fit.elasticity * -10:+.1f}% tokens."
            if fit is not None
            else "Fewer than 2 priced values: no elasticity."
        ),
    )
    fig, ax = _figure()
    ax.set_xscale("log")
    ax.set_yscale("log")
    colours = _colours([p.value for p in priced])
    for p in priced:
        ax.scatter([p.usd_per_mtok], [p.tokens], s=60, color=colours[p.value], zorder=3)
        ax.annotate(_short(p.value), (p.usd_per_mtok, p.tokens), xytext=(6, 4),
                    textcoords="offset points", fontsize=8)  # fmt: skip
    ax.axvline(mid_price, color="#999999", ls="--", lw=1)
    ax.axhline(mid_tokens, color="#999999", ls="--", lw=1)
    for x, y, ha, va, text in (
        (0.02, 0.98, "left", "top", "low cost, high volume"),
        (0.98, 0.98, "right", "top", "high cost, high volume"),
        (0.02, 0.02, "left", "bottom", "low cost, low volume"),
        (0.98, 0.02, "right", "bottom", "high cost, low volume"),
    ):
        ax.text(x, y, text, transform=ax.transAxes, ha=ha, va=va, fontsize=9, color="#777777")
    if fit is not None:
        low = min(p.usd_per_mtok for p in priced)
        high = max(p.usd_per_mtok for p in priced)
        xs = [low, high]
        ys = [math.exp(fit.intercept) * x**fit.elasticity for x in xs]
        ax.plot(xs, ys, color="#d62728", lw=1.6, label=f"fit: tokens ∝ price^{fit.elasticity:.2f}")
        ax.legend(loc="lower center", fontsize=9, frameon=False)
    fig.suptitle(info.title, fontsize=14, fontweight="bold", x=0.01, ha="left")
    ax.set_title(info.note, fontsize=9, color="#555555", loc="left")
    ax.set_xlabel(info.x_label)
    ax.set_ylabel(info.y_label)
    _save(fig, out)
    return info


# --- retention ---------------------------------------------------------------------


def plot_retention(matrix: RetentionMatrix, out: Path, *, max_cohorts: int = 10) -> PlotInfo[int]:
    """Retention against weeks after the first, one line per cohort (the `max_cohorts`
    largest), and the cohort-size-weighted average of all cohorts in bold."""
    if not matrix.cells:
        raise ValueError("no retention figures to plot")
    largest = sorted(matrix.cohorts, key=lambda c: (-matrix.cohort_sizes[c], c))[:max_cohorts]
    cohorts = sorted(largest)
    series = {_cohort_label(matrix, c): matrix.curve(c) for c in cohorts}
    average = weighted_retention(matrix)
    left_out = len(matrix.cohorts) - len(cohorts)
    info = PlotInfo[int](
        out,
        f"Retention of {matrix.members} using {matrix.model}, by first-use cohort",
        "weeks after the cohort's first week",
        f"{matrix.members} of the cohort still active",
        {**series, "all cohorts (weighted)": average},
        note=(
            f"{left_out} smaller cohorts not drawn (counted in the average). " if left_out else ""
        )
        + f"Average drawn where at least {_MIN_COHORTS} cohorts are observed.",
    )
    fig, ax = _figure()
    shades = _cohort_shades(len(cohorts))
    for (label, curve), colour in zip(series.items(), shades, strict=True):
        ax.plot([a for a, _ in curve], [r for _, r in curve], color=colour, lw=1.5, marker="o",
                ms=3, alpha=0.8, label=label)  # fmt: skip
    ax.plot([a for a, _ in average], [r for _, r in average], color="black", lw=3.2,
            label="all cohorts (weighted)", zorder=4)  # fmt: skip
    ax.set_ylim(0, 1.05)
    ax.set_xlim(-0.3, max(a for curve in info.series.values() for a, _ in curve) + 0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _finish(fig, ax, info)
    _save(fig, out)
    return info


def weighted_retention(matrix: RetentionMatrix) -> list[tuple[int, float]]:
    """Active over cohort size, summed over the cohorts observed that many weeks after;
    only where at least _MIN_COHORTS are (one small late cohort says little)."""
    out = []
    for after in range(max(matrix.observed(c) for c in matrix.cohorts) + 1):
        seen = [c for c in matrix.cohorts if matrix.observed(c) >= after]
        if after and len(seen) < _MIN_COHORTS:
            break
        size = sum(matrix.cohort_sizes[c] for c in seen)
        active = sum(matrix.cells.get((c, after), (0, 0.0))[0] for c in seen)
        out.append((after, active / size if size else 0.0))
    return out


def _cohort_label(matrix: RetentionMatrix, cohort: date) -> str:
    return f"{_day(cohort)} {cohort:%Y} (n={matrix.cohort_sizes[cohort]})"


def _cohort_shades(n: int) -> list[tuple[float, float, float, float]]:
    """Oldest cohort dark, newest light (viridis), so age reads at a glance."""
    cmap = colormaps["viridis"]
    return [cmap(0.05 + 0.85 * i / max(n - 1, 1)) for i in range(n)]


# --- shared look -------------------------------------------------------------------


def _figure() -> tuple[Figure, Axes]:
    fig = Figure(figsize=(12, 6.4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.grid(True, axis="y", color="#e0e0e0", lw=0.8)
    ax.grid(True, axis="x", which="major", color="#eeeeee", lw=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def _colours(values: list[str]) -> dict[str, str]:
    spare = iter(c for c in PALETTE if c not in KNOWN_COLOURS.values())
    colours = {}
    for value in values:
        if value in KNOWN_COLOURS:
            colours[value] = KNOWN_COLOURS[value]
        elif value.startswith("other ("):
            colours[value] = OTHER_COLOUR
        else:
            colours[value] = next(spare, "#555555")
    return colours


def _finish(
    fig: Figure,
    ax: Axes,
    info: PlotInfo[X],
    legend: tuple[list[Artist], list[str]] | None = None,
    inside: bool = False,
) -> None:
    """Title, subtitle (the note), axis labels, percent ticks, legend outside on the right."""
    fig.suptitle(info.title, fontsize=14, fontweight="bold", x=0.01, ha="left")
    ax.set_title(info.note, fontsize=9, color="#555555", loc="left")
    ax.set_xlabel(info.x_label)
    ax.set_ylabel(info.y_label)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    handles, labels = legend if legend is not None else ax.get_legend_handles_labels()
    if inside:
        ax.legend(handles, labels, loc="upper center", ncols=len(labels), fontsize=9)
    else:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False,
                  fontsize=9)  # fmt: skip


def _x(day: date) -> float:
    """Days since 1970-01-01: a plain number, so the axis needs no date converter."""
    return float((day - _EPOCH).days)


def _xs(days: Sequence[date]) -> list[float]:
    return [_x(d) for d in days]


def _day(d: date) -> str:
    return f"{d.day} {d:%b}"


def _words(name: str) -> str:
    return name.replace("_", " ")


def _dated_axis(ax: Axes, weeks: list[date]) -> None:
    """A minor tick per week, a labelled one every few weeks (the year where it changes)."""
    every = max(1, -(-len(weeks) // 13))
    major = weeks[::every]
    labels = [
        f"{_day(d)}\n{d:%Y}" if i == 0 or d.year != major[i - 1].year else _day(d)
        for i, d in enumerate(major)
    ]
    ax.set_xticks(_xs(major), labels)
    ax.set_xticks(_xs(weeks), minor=True)
    ax.set_xlim(_x(weeks[0]) - 2, _x(weeks[-1]) + 2)


def _save(fig: Figure, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
