"""What a benchmark run measured: figures, ratios, targets, and their rendering.

Ratios and targets are computed from figures of the same run; targets are
marked met or missed, never asserted.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from rich.table import Table

from tokenshare.bench.cpu import RunCost

Op = Literal[">=", "<", "<="]


@dataclass(slots=True)
class Figure:
    label: str
    value: float | None
    unit: str
    runs: list[float] = field(default_factory=list)
    note: str = ""

    def shown(self) -> str:
        return fmt(self.value, self.unit)

    def runs_shown(self) -> str:
        if len(self.runs) <= 1:
            return ""
        return " / ".join(fmt(r, self.unit, bare=True) for r in self.runs)


@dataclass(slots=True)
class Section:
    key: str
    title: str
    figures: dict[str, Figure] = field(default_factory=dict)
    ratios: list[tuple[str, float | None]] = field(default_factory=list)
    ratio_values: dict[str, float | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    text: str = ""  # preformatted (the profile)
    seconds: float = 0.0
    error: str = ""

    def add(self, key: str, figure: Figure) -> Figure:
        self.figures[key] = figure
        return figure

    def ratio(
        self, label: str, num: float | None, den: float | None, key: str | None = None
    ) -> float | None:
        value = num / den if num is not None and den else None
        self.ratios.append((label, value))
        if key is not None:
            self.ratio_values[key] = value
        return value

    def value(self, key: str) -> float | None:
        figure = self.figures.get(key)
        return figure.value if figure else None


@dataclass(slots=True)
class Target:
    label: str
    value: float | None
    op: Op
    threshold: float
    unit: str
    #: Where the profile that explains a miss is (a section's py-spy tables).
    explained_by: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        if self.op == ">=":
            return self.value >= self.threshold
        if self.op == "<":
            return self.value < self.threshold
        return self.value <= self.threshold

    def verdict(self) -> str:
        """Met or missed, with the measured value against the threshold, and for a
        miss the gap: how far short of a floor, or over a limit."""
        met = self.met
        if met is None:
            return "not measured"
        assert self.value is not None
        if self.threshold == 0:
            return "met" if met else "missed"
        share = self.value / self.threshold
        floor = self.op == ">="
        how = f"{share:.2f}x the {'target' if floor else 'limit'}"
        if met:
            return f"met ({how})"
        gap = (1 - share) if floor else (share - 1)
        return f"missed ({how}: {gap:.0%} {'short' if floor else 'over'})"


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def rate_figure(label: str, runs: Sequence[float], note: str = "") -> Figure:
    """A throughput figure: the median of its runs, in events/s."""
    return Figure(label, median(runs), "events/s", list(runs), note)


#: CPU is reported per this many stored events (the issue's unit) and per million.
CPU_UNITS: tuple[tuple[str, int], ...] = (("cpu", 200_000), ("cpu_m", 1_000_000))


def cost_figures(section: Section, key: str, label: str, costs: Sequence[RunCost]) -> None:
    """A run kind's figures: median events/s, and median CPU seconds of its processes
    per 200k and per million stored events (every run listed)."""
    section.add(key, rate_figure(label, [c.rate for c in costs]))
    for suffix, per in CPU_UNITS:
        runs = [c.cpu_per(per) for c in costs]
        section.add(
            f"{key}_{suffix}",
            Figure(f"{label}: CPU per {per:,} stored events", median(runs), "CPU s", runs),
        )


def fmt(value: float | None, unit: str, *, bare: bool = False) -> str:
    if value is None:
        return "n/a"
    if unit == "x":
        text = f"{value:,.2f}x" if value < 100 else f"{value:,.0f}x"
        return text
    if unit in ("events/s", "rows/s"):
        text = f"{value:,.0f}"
    elif unit == "s":
        text = f"{value:.3f}" if value < 10 else f"{value:.1f}"
    elif unit == "CPU s":
        text = f"{value:,.2f}"
    elif unit in ("MiB", "events"):
        text = f"{value:,.0f}"
    else:
        text = f"{value:,.3g}"
    return text if bare else f"{text} {unit}"


def section_table(section: Section) -> Table:
    table = Table(title=section.title, title_justify="left", show_lines=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("runs", justify="right")
    for figure in section.figures.values():
        table.add_row(figure.label, figure.shown(), figure.runs_shown())
    for label, value in section.ratios:
        table.add_row(f"[cyan]{label}[/]", f"[cyan]{fmt(value, 'x')}[/]", "")
    return table


def targets_table(targets: Sequence[Target]) -> Table:
    table = Table(title="Targets (marked, never asserted)", title_justify="left")
    table.add_column("target")
    table.add_column("measured", justify="right")
    table.add_column("verdict")
    for t in targets:
        colour = {True: "green", False: "red", None: "yellow"}[t.met]
        table.add_row(
            f"{t.label} {t.op} {fmt(t.threshold, t.unit)}",
            fmt(t.value, t.unit),
            f"[{colour}]{t.verdict()}[/]",
        )
    return table


def section_markdown(section: Section) -> str:
    lines = [f"## {section.title}", ""]
    if section.error:
        lines += [f"**Failed:** `{section.error}`", ""]
    if section.figures:
        lines += ["| figure | value | runs |", "|---|---:|---:|"]
        for figure in section.figures.values():
            label = figure.label + (f" ({figure.note})" if figure.note else "")
            lines.append(f"| {label} | {figure.shown()} | {figure.runs_shown()} |")
        lines.append("")
    if section.ratios:
        lines += ["| ratio (same run) | value |", "|---|---:|"]
        lines += [f"| {label} | {fmt(value, 'x')} |" for label, value in section.ratios]
        lines.append("")
    if section.text:
        lines += ["```text", section.text.rstrip(), "```", ""]
    lines += [f"- {note}" for note in section.notes]
    lines.append(f"- measured in {section.seconds:.0f} s")
    return "\n".join(lines) + "\n"


def targets_markdown(targets: Sequence[Target]) -> str:
    lines = [
        "## Targets",
        "",
        "Marked met or missed, never asserted.",
        "",
        "| target | measured | verdict | profile that explains a miss |",
        "|---|---:|---|---|",
    ]
    for t in targets:
        why = t.explained_by if t.met is False else ""
        lines.append(
            f"| {t.label} {t.op} {fmt(t.threshold, t.unit)} | {fmt(t.value, t.unit)} "
            f"| {t.verdict()} | {why} |"
        )
    return "\n".join(lines) + "\n"
