"""Contracts of what the share stage publishes (JSON, orjson-encoded).

`<prefix>.alerts`: one `AlertMessage` per alert, key = alert_id. The topic is
also the ledger of what has fired: consumers may de-duplicate on alert_id.
`<prefix>.shares`: one `ShareSnapshot` per (window, dimension, measure) when
its figures change, key = "<window_kind>|<dimension>|<measure>".
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class AlertMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    alert_id: str = Field(description="Stable id: same finding about the same window, same id.")
    rule: Literal["crossover", "threshold", "concentration", "jump", "rank", "dead_letter_breaker"]
    status: Literal["provisional", "final", "late_correction"] = Field(
        description="provisional: the window is still open; final: it closed; "
        "late_correction: data later than the allowed lateness changed a closed window."
    )
    dimension: str
    measure: Literal["tokens", "prompt_tokens", "completion_tokens", "requests", "spend_usd"]
    window_kind: Literal["iso_week", "rolling_7d"]
    window_start: date
    window_end: date = Field(description="Exclusive.")
    window_label: str = Field(description="e.g. 2026-W07 or 2026-02-09..2026-02-15")
    subject: str = Field(description="What the alert is about, e.g. 'China>US'.")
    text: str = Field(description="One human-readable line.")
    details: dict[str, Any] = Field(
        description="Rule-specific figures; crossovers: leader, overtaken, share_before, "
        "share_after, total_after, margin_pp, first_lead_window, window_before."
    )


class ShareValue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    value: str
    total: float = Field(description="The measure's total for this value in the window.")
    share: float = Field(ge=0, le=1, description="Of all values, unidentified included.")
    share_identified: float = Field(
        ge=0, le=1, description="Of all values but unidentified (0 for unidentified itself)."
    )


class ShareSnapshot(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    window_kind: Literal["iso_week", "rolling_7d"]
    window_start: date
    window_end: date
    window_label: str
    dimension: str
    measure: str
    final: bool
    computed_at: datetime
    values: list[ShareValue]
