"""Value objects of the share stage: windows, window shares, alerts."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from tokenshare.schema.catalog import UNIDENTIFIED

#: What a share is a share of. `tokens` = prompt + completion.
MEASURES: tuple[str, ...] = (
    "tokens",
    "prompt_tokens",
    "completion_tokens",
    "requests",
    "spend_usd",
)
#: Every dimension shares are kept for (catalog ones first, then request fields).
DIMENSIONS: tuple[str, ...] = (
    "origin_bloc", "origin_country", "author", "model", "weights", "size_class", "reasoning",
    "category", "provider", "region", "language",
)  # fmt: skip

WindowKind = Literal["iso_week", "rolling_7d"]
Status = Literal["provisional", "final", "late_correction"]


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """Days [start, end) in UTC. ISO weeks start on Monday; rolling windows end each day."""

    start: date
    end: date
    kind: WindowKind

    @property
    def label(self) -> str:
        if self.kind == "iso_week":
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        return f"{self.start.isoformat()}..{(self.end - timedelta(days=1)).isoformat()}"


@dataclass(frozen=True, slots=True)
class WindowShares:
    """Totals of one measure by value of one dimension over one window."""

    window: Window
    dimension: str
    measure: str
    totals: dict[str, float]
    final: bool

    def total(self, exclude_unidentified: bool = False) -> float:
        return sum(
            v for k, v in self.totals.items() if not (exclude_unidentified and k == UNIDENTIFIED)
        )

    def shares(self, exclude_unidentified: bool = False) -> dict[str, float]:
        denominator = self.total(exclude_unidentified)
        if denominator <= 0:
            return {}
        return {
            k: v / denominator
            for k, v in self.totals.items()
            if not (exclude_unidentified and k == UNIDENTIFIED)
        }

    def share(self, value: str, exclude_unidentified: bool = False) -> float:
        return self.shares(exclude_unidentified).get(value, 0.0)


@dataclass(frozen=True, slots=True)
class Alert:
    """One finding of a rule about one window. Its id is stable across runs and restarts."""

    rule: str
    status: Status
    dimension: str
    measure: str
    window: Window
    subject: str
    text: str
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def alert_id(self) -> str:
        key = "|".join(
            (
                self.rule,
                self.status,
                self.dimension,
                self.measure,
                self.window.kind,
                self.window.start.isoformat(),
                self.subject,
            )
        )
        return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "rule": self.rule,
            "status": self.status,
            "dimension": self.dimension,
            "measure": self.measure,
            "window_kind": self.window.kind,
            "window_start": self.window.start.isoformat(),
            "window_end": self.window.end.isoformat(),
            "window_label": self.window.label,
            "subject": self.subject,
            "text": self.text,
            "details": self.details,
        }
