"""The data contract: one LLM request as the gateway saw it.

Modelled on what a gateway records per request (OpenRouter's generation
record, LiteLLM's spend log, OpenTelemetry GenAI spans). Validation is strict
on what feeds shares (tokens, time, model) and lenient on unknown extra keys,
so that a gateway adding a field never sends good traffic to the dead-letter
topic.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Self

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_validator,
    model_validator,
)

#: Oldest request time accepted. LLM gateways with token accounting start in 2023.
MIN_TS = datetime(2023, 1, 1, tzinfo=UTC)
#: How far ahead of this machine's clock a request time may be (clock skew).
MAX_FUTURE = timedelta(hours=1)
#: No request has more tokens than this on any side; larger counts are corrupt data.
MAX_TOKENS = 20_000_000
#: The most one request may cost; larger is corrupt data, not traffic.
MAX_COST_USD = 100_000.0

SLUG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,63}/[A-Za-z0-9][A-Za-z0-9._:~@+-]{0,127}$"


_ZERO = timedelta(0)
_EPOCH_MS = ConfigDict(ser_json_temporal="milliseconds")
_TIMES = TypeAdapter(list[datetime], config=_EPOCH_MS)
_latest = (0.0, 0)  # (monotonic second, epoch ms of now + MAX_FUTURE)


def latest_allowed_ms() -> int:
    """now + MAX_FUTURE in epoch ms, recomputed once a second: the hot path checks
    hundreds of thousands of timestamps a second, and the clock is costly."""
    global _latest
    tick = time.monotonic()
    if tick - _latest[0] >= 1.0:
        _latest = (tick, int((datetime.now(UTC) + MAX_FUTURE).timestamp() * 1000))
    return _latest[1]


def epoch_ms(times: list[datetime]) -> list[int]:
    """Epoch milliseconds (floor) of aware datetimes, whatever their offsets.

    pydantic-core converts in Rust (about 0.3 us per value, half of
    `(ts - epoch) // ms` in Python, whose tz arithmetic calls back into
    pydantic's TzInfo). It writes fractional ms as floats: their 16 digits keep
    sub-ms parts exact enough for int() to floor (times are after 2023, never
    negative)."""
    return [int(ms) for ms in orjson.loads(_TIMES.dump_json(times))]


#: Counts that are parts of another: (parts, total, reason when their sum exceeds it).
PARTS_OF: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        ("reasoning_tokens",),
        "completion_tokens",
        "reasoning_tokens exceeds completion_tokens (reasoning is part of it)",
    ),
    (
        ("cached_tokens", "cache_creation_tokens"),
        "prompt_tokens",
        "cached_tokens + cache_creation_tokens exceeds prompt_tokens (both are part of it)",
    ),
)


def rule_violations(
    events: Sequence[EventFields], ts_ms: Sequence[int], latest_ms: int
) -> list[tuple[int, str]]:
    """(position, reason) of events breaking the rules no single field can check:
    `PARTS_OF`, then no ts after `latest_ms`.

    The one place these rules live: the pydantic path runs it over whole
    batches, `TokenEvent` over itself; `schema.column_check` runs the same
    `PARTS_OF` by column.
    """
    bad: list[tuple[int, str]] = []
    for i, (e, ms) in enumerate(zip(events, ts_ms, strict=True)):
        for parts, total, reason in PARTS_OF:
            if sum(getattr(e, part) for part in parts) > getattr(e, total):
                bad.append((i, reason))
                break
        else:
            if ms > latest_ms:
                when = datetime.fromtimestamp(latest_ms / 1000, UTC).isoformat()
                bad.append((i, f"ts {e.ts.isoformat()} is in the future (after {when})"))
    return bad


Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Label = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._/:-]*$")
]
# Checked in Rust: aware, and not before MIN_TS (the future bound moves: see rule_violations).
Timestamp = Annotated[AwareDatetime, Field(ge=MIN_TS)]


#: The characters an event id may hold: none needs quoting in SQL, a URL or a header.
EVENT_ID_CHARS = "A-Za-z0-9._:@-"
EVENT_ID_MAX = 128
EVENT_ID_PATTERN = rf"^[{EVENT_ID_CHARS}]+$"


class EventFields(BaseModel):
    """One request through the gateway, every field checked on its own.

    Validation runs in pydantic-core (Rust) only: no Python per event, which is
    what lets a worker validate whole arrays fast. The cross-field and clock
    rules are `rule_violations`, applied per batch by `schema.wire`. Use
    `TokenEvent` everywhere else: it applies them itself.
    """

    model_config = ConfigDict(
        strict=True,  # "12" is not 12: the gateway must send numbers as numbers
        extra="ignore",
        frozen=True,
        allow_inf_nan=False,
        str_strip_whitespace=False,
    )

    event_id: Annotated[
        str, StringConstraints(min_length=1, max_length=EVENT_ID_MAX, pattern=EVENT_ID_PATTERN)
    ] = Field(description="Unique id of the request (gateway generation id).")
    ts: Timestamp = Field(description="Request time, RFC 3339 with an offset; stored in UTC.")
    model: Annotated[str, StringConstraints(pattern=SLUG_PATTERN)] = Field(
        description="Model slug `author/model`, e.g. `deepseek/deepseek-v3.2`."
    )
    provider: Label = Field(description="Inference provider that served the request.")
    prompt_tokens: Tokens
    completion_tokens: Tokens
    reasoning_tokens: Tokens = Field(0, description="Part of completion_tokens spent reasoning.")
    cached_tokens: Tokens = Field(0, description="Part of prompt_tokens read from cache.")
    cache_creation_tokens: Tokens = Field(
        0, description="Part of prompt_tokens written to the cache (cache-creation input)."
    )
    cost_usd: float = Field(0.0, ge=0.0, le=MAX_COST_USD)
    app_id: ShortText | None = None
    user_id: ShortText | None = Field(None, description="Opaque; never an e-mail or a name.")
    category: Label | None = Field(None, description="Use case, e.g. programming, roleplay.")
    region: Label | None = None
    language: (
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] | None
    ) = None
    tool_calls: int = Field(0, ge=0, le=10_000)
    latency_ms: int | None = Field(None, ge=0, le=3_600_000)
    finish_reason: Label | None = None
    streamed: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class TokenEvent(EventFields):
    """One request through the gateway. Wire format: an orjson-encoded JSON object
    (or an array of them). reasoning_tokens is part of completion_tokens;
    cached_tokens and cache_creation_tokens are parts of prompt_tokens; ts is at
    most 1 hour ahead of the clock."""

    # The contract: EventFields plus `rule_violations`, with ts in UTC.

    @field_validator("ts")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        try:
            # Most gateways send UTC: relabelling is far cheaper than converting.
            return (
                value.replace(tzinfo=UTC) if value.utcoffset() == _ZERO else value.astimezone(UTC)
            )
        except OverflowError:  # year 9999 with an offset: not a real request either
            raise ValueError(f"ts {value.isoformat()} is out of range") from None

    @model_validator(mode="after")
    def _rules(self) -> Self:
        for _, reason in rule_violations([self], epoch_ms([self.ts]), latest_allowed_ms()):
            raise ValueError(reason)
        return self
