"""Value objects of the share stage: window shares and the alerts rules find.

Windows are the contract's (``schema.outputs.Window``): alerts and snapshots
name them the way the share stage computes them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tokenshare.schema.catalog import UNIDENTIFIED
from tokenshare.schema.outputs import AlertMessage, Window
from tokenshare.schema.vocabulary import (
    AlertKind,
    AlertMeasure,
    Counter,
    Dimension,
    Measure,
    Severity,
    ShareRule,
    Status,
)


def largest_first(amounts: Mapping[str, float]) -> list[tuple[str, float]]:
    """(value, amount) pairs, the largest first, ties broken by name so the order is stable."""
    return sorted(amounts.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass(frozen=True, slots=True)
class WindowShares:
    """Totals of one measure by value of one dimension over one window."""

    window: Window
    dimension: Dimension
    measure: Measure | Counter
    totals: dict[str, float]
    final: bool
    #: The data's days cover the whole window (not the partial first or last one).
    complete: bool = True

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

    rule: ShareRule
    status: Status
    dimension: Dimension
    measure: AlertMeasure
    window: Window
    subject: str
    text: str
    details: dict[str, Any] = field(default_factory=dict, compare=False)
    severity: Severity = "warning"
    kind: AlertKind = "change"
    explanation: str = field(default="", compare=False)
    #: The rule's name in its file (budgets and digests count by it; not part of the id).
    rule_name: str = field(default="", compare=False)

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
                self.kind,
                self.rule_name,
            )
        )
        return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()

    def message(self) -> AlertMessage:
        """The alert as published on the alerts topic."""
        return AlertMessage.about(
            self.window,
            alert_id=self.alert_id,
            rule=self.rule,
            status=self.status,
            dimension=self.dimension,
            measure=self.measure,
            subject=self.subject,
            text=self.text,
            details={**self.details, "rule_name": self.rule_name}
            if self.rule_name
            else self.details,
            severity=self.severity,
            kind=self.kind,
            explanation=self.explanation,
        )
