"""Output of the analyst commands: a table to read, or csv / json for scripts.

Every analyst command builds a ``Report`` (column names and plain values) and,
for people, a rich table. csv and json carry the values unformatted and complete
(ISO dates, full floats, empty / null for missing). A table written to a pipe or
a file is laid out on a canvas as wide as it needs, so nothing is cut to the 80
columns rich assumes when stdout is not a terminal.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import click
import orjson
from rich.console import Console, RenderableType
from rich.table import Table

FORMATS = ("table", "csv", "json")
#: Width of the canvas for tables that do not go to a terminal: wider than any table.
PIPE_WIDTH = 100_000

format_option = click.option(
    "--format",
    "fmt",
    default="table",
    show_default=True,
    type=click.Choice(FORMATS),
    help="table to read; csv (header + rows) or json (one object per row) for scripts.",
)

Formatter = Callable[[Any], str]


@dataclass(frozen=True, slots=True)
class Report:
    """Rows of plain values under named columns; `notes` are printed under a table only."""

    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    notes: Sequence[str] = field(default_factory=tuple)

    def table(self, formats: Mapping[str, Formatter] | None = None) -> Table:
        """The rows as a rich table; numbers right-aligned, `formats` per column."""
        formats = formats or {}
        grid = Table(title=self.title, title_justify="left")
        numeric = [
            all(isinstance(r[i], int | float) or r[i] is None for r in self.rows) and self.rows
            for i in range(len(self.columns))
        ]
        for name, right in zip(self.columns, numeric, strict=True):
            grid.add_column(name, justify="right" if right else "left")
        for row in self.rows:
            grid.add_row(*(formats.get(c, cell)(v) for c, v in zip(self.columns, row, strict=True)))
        return grid


def cell(value: Any) -> str:
    """A value as a table shows it by default."""
    if value is None:
        return "·"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def pct(value: Any) -> str:
    return "·" if value is None else f"{float(value) * 100:.1f}%"


def signed_pct(value: Any) -> str:
    return "·" if value is None else f"{float(value) * 100:+.1f}%"


def whole(value: Any) -> str:
    return "·" if value is None else f"{float(value):,.0f}"


def usd(value: Any) -> str:
    return "·" if value is None else f"${float(value):,.4f}"


def stdout_console() -> Console:
    """A console on stdout: the terminal's width on a terminal, otherwise unbounded."""
    console = Console()
    if console.is_terminal:
        return console
    return Console(width=PIPE_WIDTH, no_color=True, highlight=False)


def emit(
    fmt: str,
    report: Report,
    table: RenderableType | None = None,
    formats: Mapping[str, Formatter] | None = None,
) -> None:
    """Print `report` in `fmt`; `table` replaces the default grid for people."""
    if fmt == "csv":
        _write(csv_text(report))
    elif fmt == "json":
        _write(json_text(report))
    else:
        console = stdout_console()
        console.print(table if table is not None else report.table(formats))
        for note in report.notes:
            console.print(note)


def csv_text(report: Report) -> str:
    """Header and rows; dates ISO, missing values empty, floats in full."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(report.columns)
    writer.writerows([_plain(v) for v in row] for row in report.rows)
    return out.getvalue()


def json_text(report: Report) -> str:
    """A JSON array with one object per row (column -> value), and a newline."""
    rows = [dict(zip(report.columns, row, strict=True)) for row in report.rows]
    return orjson.dumps(rows, default=str).decode() + "\n"


def _plain(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return value


def _write(text: str) -> None:
    click.echo(text, nl=False)
