"""Contracts of what the share stage publishes (JSON, orjson-encoded).

`<prefix>.alerts`: one `AlertMessage` per alert, key = alert_id. The topic is
also the ledger of what has fired: consumers may de-duplicate on alert_id.
`<prefix>.shares`: one `ShareSnapshot` per (window, dimension, measure) when
its figures change, key = "<window_kind>|<dimension>|<measure>".

These models are the run-time types too: the share stage and the worker build
them, the store decodes them, so what is published is what was validated.
Every message names its window by kind, start, end and label; the label is
derived from the other three by `Window.label` and checked on decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tokenshare.schema.vocabulary import (
    AlertDimension,
    AlertKind,
    AlertMeasure,
    Dimension,
    Measure,
    Rule,
    Severity,
    Status,
    WindowKind,
)

ONE_WEEK = timedelta(days=7)


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """Days [start, end) in UTC. ISO weeks start on Monday; rolling windows end each day."""

    start: date
    end: date
    kind: WindowKind

    @classmethod
    def iso_week(cls, day: date) -> Window:
        """The ISO week (Monday to Sunday) holding `day`."""
        monday = day - timedelta(days=day.weekday())
        return cls(monday, monday + ONE_WEEK, "iso_week")

    @classmethod
    def month(cls, day: date) -> Window:
        """The calendar month holding `day`."""
        first = day.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return cls(first, following, "month")

    @property
    def label(self) -> str:
        """``2026-W07`` for an ISO week, ``2026-02`` for a month, ``2026-02-09..2026-02-15``
        (last day included) for a rolling window."""
        if self.kind == "iso_week":
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        if self.kind == "month":
            return f"{self.start.year}-{self.start.month:02d}"
        return f"{self.start.isoformat()}..{(self.end - timedelta(days=1)).isoformat()}"


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def encode(self) -> bytes:
        """The message value as published (JSON)."""
        return orjson.dumps(self.model_dump())

    @classmethod
    def decode(cls, value: bytes) -> Self:
        """A published message value, validated; a pydantic ValidationError (a
        ValueError) when it does not follow the contract."""
        return cls.model_validate_json(value)


class _Windowed(_Message):
    window_kind: WindowKind
    window_start: date
    window_end: date = Field(description="Exclusive.")
    window_label: str = Field(description="e.g. 2026-W07 or 2026-02-09..2026-02-15")

    @property
    def window(self) -> Window:
        return Window(self.window_start, self.window_end, self.window_kind)

    @staticmethod
    def _fields_of(window: Window) -> dict[str, Any]:
        """The window's four fields, as every message about a window carries them."""
        return {
            "window_kind": window.kind,
            "window_start": window.start,
            "window_end": window.end,
            "window_label": window.label,
        }

    @model_validator(mode="after")
    def _label_names_the_window(self) -> Self:
        if self.window_label != self.window.label:
            raise ValueError(
                f"window_label {self.window_label!r} does not name the window "
                f"{self.window_kind} {self.window_start}..{self.window_end} "
                f"({self.window.label!r})"
            )
        return self


class AlertMessage(_Windowed):
    alert_id: str = Field(description="Stable id: same finding about the same window, same id.")
    rule: Rule
    status: Status = Field(
        description="provisional: the window is still open; final: it closed; "
        "late_correction: data later than the allowed lateness changed a closed window."
    )
    dimension: AlertDimension = Field(
        description="The dimension shared out; 'input' for alerts about the input stream."
    )
    measure: AlertMeasure
    subject: str = Field(description="What the alert is about, e.g. 'China>US'.")
    text: str = Field(description="One human-readable line.")
    details: dict[str, Any] = Field(
        description="Rule-specific figures; crossovers: leader, overtaken, share_before, "
        "share_after, total_after, margin_pp, first_lead_window, window_before."
    )
    severity: Severity = Field(
        default="warning", description="Set by the rule; info for baselines."
    )
    kind: AlertKind = Field(
        default="change",
        description="change: something moved; baseline: the state found at the rule's "
        "first evaluation, reported once; digest: one rule's alerts past its per-window "
        "budget, in one message (listed in details.alerts).",
    )
    explanation: str = Field(
        default="", description="Why the rule fired, in words: the rule, its levels, the figures."
    )

    @classmethod
    def about(
        cls,
        window: Window,
        *,
        alert_id: str,
        rule: Rule,
        status: Status,
        dimension: AlertDimension,
        measure: AlertMeasure,
        subject: str,
        text: str,
        details: dict[str, Any],
        severity: Severity = "warning",
        kind: AlertKind = "change",
        explanation: str = "",
    ) -> AlertMessage:
        """The alert about `window` (its kind, start, end and label filled in)."""
        return cls(
            **cls._fields_of(window),
            alert_id=alert_id,
            rule=rule,
            status=status,
            dimension=dimension,
            measure=measure,
            subject=subject,
            text=text,
            details=details,
            severity=severity,
            kind=kind,
            explanation=explanation,
        )


class ShareValue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    value: str
    total: float = Field(description="The measure's total for this value in the window.")
    share: float = Field(ge=0, le=1, description="Of all values, unidentified included.")
    share_identified: float = Field(
        ge=0, le=1, description="Of all values but unidentified (0 for unidentified itself)."
    )


class ShareSnapshot(_Windowed):
    dimension: Dimension
    measure: Measure
    final: bool
    computed_at: datetime
    values: list[ShareValue]

    @classmethod
    def about(
        cls,
        window: Window,
        *,
        dimension: Dimension,
        measure: Measure,
        final: bool,
        computed_at: datetime,
        values: list[ShareValue],
    ) -> ShareSnapshot:
        """The snapshot of `window` (its kind, start, end and label filled in)."""
        return cls(
            **cls._fields_of(window),
            dimension=dimension,
            measure=measure,
            final=final,
            computed_at=computed_at,
            values=values,
        )

    @property
    def key(self) -> str:
        """The message key on the shares topic."""
        return f"{self.window_kind}|{self.dimension}|{self.measure}"
