"""The figures table of tests/RELIABILITY.md, shared by every fault scenario.

Each scenario records one row: what it injected, how many rounds, the ledger's
figures and, for crash scenarios, the recovery time. Set
TOKENSHARE_RELIABILITY_REPORT to a path (`make reliability` does) to rewrite the
rows of the scenarios that ran; rows of scenarios not run stay as they were.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tests.ledger import Figures

START, END = "<!-- figures:start -->", "<!-- figures:end -->"
HEADER = (
    "| scenario | injects | runs | produced | acked | stored | duplicated | lost "
    "| dead letters / invalid | recovery: first new row / lag 0 |"
)


@dataclass(frozen=True)
class Recovery:
    """Seconds from the fault (a kill, a dropped link) to the first row stored that
    was not stored before it, and to both consumer groups having no lag."""

    first_row_s: float
    lag_zero_s: float

    def __str__(self) -> str:
        return f"{self.first_row_s:.1f} s / {self.lag_zero_s:.1f} s"


_ROWS: list[str] = []


def record(
    scenario: str, injects: str, runs: int, f: Figures, recovery: Recovery | None = None
) -> None:
    _ROWS.append(
        f"| {scenario} | {injects} | {runs} | {f.produced} | {f.acked} | "
        f"{f.stored} | {f.duplicated} | {f.lost} | "
        f"{f.dead_letters} / {f.invalid_injected} | {recovery or '-'} |"
    )
    path = os.environ.get("TOKENSHARE_RELIABILITY_REPORT")
    if path:
        write(Path(path))


def write(path: Path) -> None:
    text = path.read_text() if path.exists() else f"{START}\n{END}\n"
    head, rest = text.split(START, 1)
    block, tail = rest.split(END, 1)
    rows = {
        line.split("|")[1].strip(): line
        for line in block.strip().splitlines()[2:]
        if line.startswith("| ")
    }
    for line in _ROWS:
        rows[line.split("|")[1].strip()] = line
    old_columns = HEADER.count("|")
    table = [
        HEADER,
        "|" + "---|" * (old_columns - 1),
        # rows written before the recovery column existed get an empty cell
        *(r if r.count("|") == old_columns else r + " - |" for r in rows.values()),
    ]
    path.write_text(head + START + "\n" + "\n".join(table) + "\n" + END + tail)
