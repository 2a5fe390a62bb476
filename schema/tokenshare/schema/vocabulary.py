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

#: ISO weeks (Monday to Sunday, UTC), and 7-day windows ending each day.
WindowKind = Literal["iso_week", "rolling_7d"]
WINDOW_KINDS: Final[tuple[WindowKind, ...]] = get_args(WindowKind)

#: provisional: the window is still open; final: it closed; late_correction: data
#: later than the allowed lateness changed a closed window.
Status = Literal["provisional", "final", "late_correction"]
STATUSES: Final[tuple[Status, ...]] = get_args(Status)

# --- rules ----------------------------------------------------------------------------

#: The share-shift rules the share stage evaluates.
ShareRule = Literal["crossover", "threshold", "concentration", "jump", "rank"]
#: The worker's alert when its dead-letter breaker opens or closes.
BreakerRule = Literal["dead_letter_breaker"]
Rule = Literal[ShareRule, BreakerRule]

SHARE_RULES: Final[tuple[ShareRule, ...]] = get_args(ShareRule)
DEAD_LETTER_BREAKER: Final[BreakerRule] = "dead_letter_breaker"
#: Every rule an alert can name.
RULES: Final[tuple[Rule, ...]] = (*SHARE_RULES, DEAD_LETTER_BREAKER)
