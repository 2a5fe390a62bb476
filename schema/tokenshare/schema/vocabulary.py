"""The project's vocabulary: the names every part uses for what shares are
computed over, of what, in which windows, and what alerts say about them.

Each set is a ``Literal`` type (for pydantic models and mypy) and a tuple of
its values in a stable order (for click choices, SQL allowlists and loops).
The tuples are derived from the types, so the two cannot disagree. The
ClickHouse migrations spell the same names in SQL; a test checks the tables
and views against this module.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

# --- dimensions: the enriched columns shares are computed over ----------------------

#: Dimensions the model catalog supplies (fields of ``catalog.ModelInfo``).
CatalogDimension = Literal[
    "origin_bloc", "origin_country", "author", "model", "weights", "size_class", "reasoning"
]
#: Dimensions the request itself carries.
RequestDimension = Literal["category", "provider", "region", "language"]
Dimension = Literal[CatalogDimension, RequestDimension]

CATALOG_DIMENSIONS: Final[tuple[CatalogDimension, ...]] = get_args(CatalogDimension)
REQUEST_DIMENSIONS: Final[tuple[RequestDimension, ...]] = get_args(RequestDimension)
#: Every dimension, catalog ones first.
DIMENSIONS: Final[tuple[Dimension, ...]] = (*CATALOG_DIMENSIONS, *REQUEST_DIMENSIONS)

#: The ``raw_events`` column each dimension reads; the dimension's name unless listed
#: here (``model`` is the catalog slug, not the slug as sent).
DIMENSION_COLUMNS: Final[dict[Dimension, str]] = {
    d: {"model": "model_canonical"}.get(d, d) for d in DIMENSIONS
}

#: What alerts about the input stream itself (not a share) name as their dimension.
InputDimension = Literal["input"]
AlertDimension = Literal[Dimension, InputDimension]
INPUT_DIMENSION: Final[InputDimension] = "input"

# --- measures: what a share is a share of -------------------------------------------

#: `tokens` = prompt + completion; `spend_usd` = the events' cost_usd.
Measure = Literal["tokens", "prompt_tokens", "completion_tokens", "requests", "spend_usd"]
MEASURES: Final[tuple[Measure, ...]] = get_args(Measure)

#: Further per-day sums the share stage keeps beside the measures, for the ratio
#: rules: reasoning and cache-hit tokens, and requests that made a tool call.
Counter = Literal["reasoning_tokens", "cached_tokens", "tool_call_requests"]
COUNTERS: Final[tuple[Counter, ...]] = get_args(Counter)
#: Every per-day sum the share stage reads, measures first (the order of its cells).
SUMS: Final[tuple[Measure | Counter, ...]] = (*MEASURES, *COUNTERS)

#: Ratios of sums a rule can watch (per value, or over a whole segment):
#: prompt/completion tokens per request, the share of requests with a tool call,
#: reasoning tokens among completion tokens, cached among prompt tokens, spend per
#: million tokens, and a value's spend share over its token share.
Ratio = Literal[
    "prompt_tokens_per_request",
    "completion_tokens_per_request",
    "tool_call_share",
    "reasoning_token_share",
    "cache_hit_share",
    "spend_per_mtok",
    "spend_over_token_share",
]
RATIOS: Final[tuple[Ratio, ...]] = get_args(Ratio)

#: What an alert is about: a measure's share, or a ratio.
AlertMeasure = Literal[Measure, Ratio]

#: Dimensions a rule can filter on (``where``): the share stage keeps sums of every
#: dimension within each value of these (``segment_rollup``).
SegmentDimension = Literal["weights", "origin_bloc", "reasoning", "category"]
SEGMENT_DIMENSIONS: Final[tuple[SegmentDimension, ...]] = get_args(SegmentDimension)

#: The measures the analyst share views (``weekly_shares``, ``rolling_shares``) carry
#: a share column for, and that column's name.
SHARE_COLUMNS: Final[dict[Measure, str]] = {
    "tokens": "token_share",
    "requests": "request_share",
    "spend_usd": "spend_share",
}
#: The measures analysts can share out (the keys of SHARE_COLUMNS).
ANALYST_MEASURES: Final[tuple[Measure, ...]] = tuple(SHARE_COLUMNS)

# --- windows and alert statuses -----------------------------------------------------

#: ISO weeks (Monday to Sunday, UTC), 7-day windows ending each day, calendar months.
WindowKind = Literal["iso_week", "rolling_7d", "month"]
WINDOW_KINDS: Final[tuple[WindowKind, ...]] = get_args(WindowKind)

#: provisional: the window is still open; final: it closed; late_correction: data
#: later than the allowed lateness changed a closed window.
Status = Literal["provisional", "final", "late_correction"]
STATUSES: Final[tuple[Status, ...]] = get_args(Status)

# --- rules ----------------------------------------------------------------------------

#: The share-shift rules the share stage evaluates.
ShareRule = Literal[
    "crossover", "threshold", "concentration", "jump", "rank", "ratio", "volume", "catalog_gap"
]
#: The worker's alert when its dead-letter breaker opens or closes.
BreakerRule = Literal["dead_letter_breaker"]
Rule = Literal[ShareRule, BreakerRule]

SHARE_RULES: Final[tuple[ShareRule, ...]] = get_args(ShareRule)
DEAD_LETTER_BREAKER: Final[BreakerRule] = "dead_letter_breaker"
#: Every rule an alert can name.
RULES: Final[tuple[Rule, ...]] = (*SHARE_RULES, DEAD_LETTER_BREAKER)

#: How urgent an alert is; a rule sets it, a baseline is always info.
Severity = Literal["info", "warning", "critical"]
SEVERITIES: Final[tuple[Severity, ...]] = get_args(Severity)

#: change: something moved; baseline: the state a rule found at its first evaluation
#: (reported once); digest: the alerts of one rule and window past its budget, in one.
AlertKind = Literal["change", "baseline", "digest"]
ALERT_KINDS: Final[tuple[AlertKind, ...]] = get_args(AlertKind)
