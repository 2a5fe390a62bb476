"""The simulated market: which models carry how many tokens in which week.

The plan is fixed (it does not depend on the simulator's seed), so that every
run tells the same story; the seed only draws the events.

- The head is the real weekly top 10 (``market_data``): its volumes are the
  real ones in the weeks a model is in the top 10. Outside them a model has a
  life cycle instead of a hole: it ramps up over the weeks before it enters,
  bridges gaps, and decays after it leaves, always below that week's 10th
  place, so no model jumps to or from 0% at the top-10 border.
- The long tail is every other model of the catalog, plus cloaked (stealth)
  models and ``:free`` variants, each with a launch week, a rise and a decay.
  Its volume follows the platform's growth (~5T -> ~20T tokens a week, OpenRouter
  and a16z, "State of AI", Dec 2025), split between origin blocs by trend,
  with small open models fading and medium ones growing.
- Per week, China-origin volume is scaled so that the China:US token ratio is
  the real top-10 ratio raised to ``RATIO_EXPONENT`` (< 1 pulls it towards
  parity without changing its sign): the lead changes hands in exactly the
  weeks it does in the real series, first in 9-15 Feb 2026 (2026-W07).

Weeks are ISO weeks (Monday to Sunday): a snapshot collected on a Sunday
describes the Sunday to Saturday before it, and is placed on the ISO week that
holds six of its seven days, so the calendar has no gap and no one-day week.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Final

import numpy as np
from numpy.typing import NDArray

from tokenshare.producers.market_data import Market, load_market
from tokenshare.schema.catalog import Catalog, ModelInfo

Floats = NDArray[np.float64]

#: Exponent applied to the real weekly China:US ratio (see the module docstring).
RATIO_EXPONENT: Final = 0.6
#: The ratio never falls below this (some real top-10 weeks have no China model).
MIN_RATIO: Final = 0.08
#: Weekly decay of a model after it leaves the top 10, and its launch ramp before.
DECAY_AFTER_TOP: Final = 0.8
RAMP_BEFORE_TOP: Final = (0.4, 0.12)
#: Outside its top-10 weeks a model stays below this fraction of the week's 10th place.
BELOW_TENTH: Final = 0.9
#: Long-tail tokens per week: fraction of the platform volume, first -> last week.
PLATFORM_TOKENS: Final = (5.0e12, 20.0e12)
TAIL_FRACTION: Final = 0.42
#: Origin mix of the long tail, first -> last week (China, US, RoW, unidentified).
TAIL_BLOCS: Final = {
    "China": (0.14, 0.40),
    "US": (0.65, 0.16),
    "RoW": (0.15, 0.42),
    "unidentified": (0.06, 0.06),
}
#: Open tail models by size class: relative weight first -> last week.
SIZE_TREND: Final = {"small": (1.6, 0.5), "medium": (0.4, 2.0), "large": (1.0, 1.0)}
#: Labs whose models carry most of the tail, relative to the rest (1.0).
POPULAR_LABS: Final = {
    "openai": 3.0,
    "google": 3.0,
    "anthropic": 2.5,
    "deepseek": 3.0,
    "qwen": 3.0,
    "meta-llama": 2.0,
    "mistralai": 2.5,
    "x-ai": 2.0,
    "z-ai": 2.0,
    "moonshotai": 2.0,
    "minimax": 1.5,
}
#: Share of an open tail model's traffic sent to its ``:free`` variant, when it has one.
FREE_SHARE: Final = 0.3
#: Cloaked pre-release models: OpenRouter publishes them under its own prefix
#: without disclosing the lab, so their traffic is ``unidentified``.
STEALTH: Final = (
    "openrouter/bert-nebulon-alpha",
    "openrouter/cypher-alpha",
    "openrouter/horizon-alpha",
    "openrouter/horizon-beta",
    "openrouter/optimus-alpha",
    "openrouter/quasar-alpha",
    "openrouter/sonoma-dusk-alpha",
    "openrouter/sonoma-sky-alpha",
    "openrouter/aurora-alpha",
    "openrouter/pony-alpha",
)


def iso_week_start(covered_from: date) -> date:
    """The Monday of the ISO week a snapshot is placed on (see the module docstring)."""
    return covered_from + timedelta(days=(7 - covered_from.weekday()) % 7)


def segment_of(info: ModelInfo) -> str:
    """The task-mix segment: china_open, other_open or closed (unidentified counts as closed)."""
    if info.weights == "open":
        return "china_open" if info.origin_bloc == "China" else "other_open"
    return "closed"


@dataclass(frozen=True, slots=True)
class PlannedModel:
    slug: str  # as sent by the gateway
    info: ModelInfo  # what the catalog says about it
    segment: str
    free: bool
    prompt_price: float  # USD per token (0 for free variants)
    completion_price: float
    cache_discount: float  # price of a cached prompt token, relative to an uncached one
    head: bool  # in the real weekly top 10 at least once


@dataclass(frozen=True, slots=True)
class MarketPlan:
    """Planned tokens per (week, model); weeks are ISO weeks, oldest first."""

    week_starts: tuple[date, ...]
    collected_on: tuple[date, ...]
    models: tuple[PlannedModel, ...]
    tokens: Floats  # shape (weeks, models), real-market scale

    def progress(self, week: int) -> float:
        """0 at the first week, 1 at the last."""
        return week / max(1, len(self.week_starts) - 1)


def _unit(*parts: object) -> float:
    """A fixed pseudo-random number in [0, 1) for a key: the plan needs no seed."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _lerp(pair: tuple[float, float], t: float) -> float:
    return pair[0] + (pair[1] - pair[0]) * t


# --------------------------------------------------------------------------- prices

#: USD per million tokens (input, output) and cached-input discount for tail models,
#: by lab for closed models, by size class for open ones: list prices of the kind
#: OpenRouter shows, rounded.
_CLOSED_PRICES: Final = {
    "anthropic": (3.0, 15.0, 0.1),
    "openai": (1.25, 10.0, 0.1),
    "google": (0.3, 2.5, 0.25),
    "x-ai": (0.2, 1.5, 0.25),
}
_CLOSED_DEFAULT: Final = (1.0, 4.0, 0.5)
_OPEN_PRICES: Final = {
    "small": (0.04, 0.12),
    "medium": (0.1, 0.4),
    "large": (0.3, 1.2),
    "undisclosed": (0.3, 1.2),
}
_OPEN_DISCOUNT: Final = {"deepseek": 0.1, "moonshotai": 0.25, "z-ai": 0.2, "minimax": 0.1}


def _discount(author: str) -> float:
    if author in _CLOSED_PRICES:
        return _CLOSED_PRICES[author][2]
    return _OPEN_DISCOUNT.get(author, 0.5)


def _tail_prices(info: ModelInfo) -> tuple[float, float]:
    if info.weights == "open":
        pin, pout = _OPEN_PRICES.get(info.size_class, _OPEN_PRICES["undisclosed"])
    else:
        pin, pout, _ = _CLOSED_PRICES.get(info.author, _CLOSED_DEFAULT)
    tier = 0.5 + _unit("price", info.model)  # models of one lab differ around its level
    return pin * tier / 1e6, pout * tier / 1e6


# --------------------------------------------------------------------------- head


def _head_volumes(market: Market) -> dict[str, Floats]:
    """Real volumes in top-10 weeks, with life cycles in between and around."""
    n = len(market.weeks)
    real: dict[str, Floats] = {}
    for i, week in enumerate(market.weeks):
        for m in week.models:
            real.setdefault(m.slug, np.zeros(n))[i] = m.usage.total_tokens
    tenth = np.array([min(m.usage.total_tokens for m in w.models) for w in market.weeks], float)
    cap = BELOW_TENTH * tenth
    out: dict[str, Floats] = {}
    for slug, v in real.items():
        present = np.flatnonzero(v > 0)
        first, last = int(present[0]), int(present[-1])
        life = v.copy()
        for k, factor in enumerate(RAMP_BEFORE_TOP, start=1):
            if first - k >= 0:
                life[first - k] = min(v[first] * factor, cap[first - k])
        for a, b in itertools.pairwise(present.tolist()):
            for j in range(a + 1, b):  # geometric bridge over a gap
                frac = (j - a) / (b - a)
                life[j] = min(math.exp((1 - frac) * math.log(v[a]) + frac * math.log(v[b])), cap[j])
        for j in range(last + 1, n):
            life[j] = min(life[j - 1] * DECAY_AFTER_TOP, cap[j])
        out[slug] = life
    return out


# --------------------------------------------------------------------------- tail


def _profile(slug: str, n: int) -> Floats:
    """A tail model's relative weekly weight: launch, a short rise, a slow decay."""
    launch = -30 + int(_unit("launch", slug) * (n + 26))
    rise = 2 + int(_unit("rise", slug) * 4)
    decay = 0.90 + 0.08 * _unit("decay", slug)
    weeks = np.arange(n, dtype=np.float64) - launch
    up = np.clip((weeks + 1) / rise, 0.0, 1.0)
    down = decay ** np.clip(weeks - rise, 0.0, None)
    out: Floats = np.where(weeks >= 0, up * down, 0.0)
    return out


def _tail_weight(info: ModelInfo, slug: str) -> float:
    lab = POPULAR_LABS.get(info.author, 1.0)
    return lab * math.exp(1.2 * (_unit("weight", slug) - 0.5) * 2)


def build_plan(market: Market | None = None, catalog: Catalog | None = None) -> MarketPlan:
    market = market or load_market()
    catalog = catalog or Catalog.load()
    n = len(market.weeks)
    t = np.linspace(0.0, 1.0, n)
    models: list[PlannedModel] = []
    columns: list[Floats] = []

    head = _head_volumes(market)
    head_canonical = set()
    last_seen = {m.slug: m for w in market.weeks for m in w.models}
    for slug, volume in head.items():
        info = catalog.lookup(slug)
        head_canonical.add(info.model)
        m = last_seen[slug]
        free = slug.endswith(":free") or m.is_free
        models.append(
            PlannedModel(
                slug=slug,
                info=info,
                segment=segment_of(info),
                free=free,
                prompt_price=0.0 if free else m.prompt_price,
                completion_price=0.0 if free else m.completion_price,
                cache_discount=_discount(info.author),
                head=True,
            )
        )
        columns.append(volume)

    # The long tail, by origin bloc, normalised within each bloc per week.
    platform = PLATFORM_TOKENS[0] * (PLATFORM_TOKENS[1] / PLATFORM_TOKENS[0]) ** t
    tail_total = TAIL_FRACTION * platform
    by_bloc: dict[str, list[tuple[PlannedModel, Floats]]] = {b: [] for b in TAIL_BLOCS}
    for slug in catalog.slugs():
        info = catalog.lookup(slug)
        if info.model in head_canonical:
            continue
        shape = _profile(slug, n) * _tail_weight(info, slug)
        if info.weights == "open" and info.size_class in SIZE_TREND:
            lo, hi = SIZE_TREND[info.size_class]
            shape = shape * (lo + (hi - lo) * t)
        if info.author == "meta-llama":  # from the default open model to under 1%
            shape = shape * (1.0 - 0.85 * t)
        if not shape.any():
            continue
        pin, pout = _tail_prices(info)
        base = PlannedModel(
            slug, info, segment_of(info), False, pin, pout, _discount(info.author), False
        )
        if info.weights == "open" and _unit("free", slug) < 0.25:
            variant = PlannedModel(
                slug + ":free", info, base.segment, True, 0.0, 0.0, base.cache_discount, False
            )
            by_bloc[info.origin_bloc].append((variant, shape * FREE_SHARE))
            shape = shape * (1 - FREE_SHARE)
        by_bloc[info.origin_bloc].append((base, shape))
    for slug in STEALTH:
        info = catalog.lookup(slug)
        launch = int(_unit("launch", slug) * n)
        shape = np.zeros(n)
        shape[launch : launch + 3] = (1.0, 1.6, 0.7)[: n - launch]
        by_bloc["unidentified"].append(
            (PlannedModel(slug, info, "closed", True, 0.0, 0.0, 1.0, False), shape)
        )
    for bloc, entries in by_bloc.items():
        if not entries:
            continue
        stack = np.array([s for _, s in entries])
        norm = stack.sum(axis=0)
        share = np.array([_lerp(TAIL_BLOCS[bloc], x) for x in t])
        stack = np.divide(stack, norm, out=np.zeros_like(stack), where=norm > 0)
        stack *= share * tail_total
        for (model, _), col in zip(entries, stack, strict=True):
            models.append(model)
            columns.append(col)

    tokens = np.array(columns).T.copy()  # (weeks, models)
    _pin_china_us_ratio(tokens, models, market, catalog)
    return MarketPlan(
        week_starts=tuple(iso_week_start(w.week_start) for w in market.weeks),
        collected_on=tuple(w.collected_on for w in market.weeks),
        models=tuple(models),
        tokens=tokens,
    )


def real_china_us_ratio(market: Market, catalog: Catalog) -> Floats:
    """China:US token ratio of each week of the real top 10."""
    out = []
    for week in market.weeks:
        china = sum(
            m.usage.total_tokens
            for m in week.models
            if catalog.lookup(m.slug).origin_bloc == "China"
        )
        us = sum(
            m.usage.total_tokens for m in week.models if catalog.lookup(m.slug).origin_bloc == "US"
        )
        out.append(china / us)
    return np.array(out)


def target_china_us_ratio(market: Market, catalog: Catalog) -> Floats:
    ratio: Floats = np.maximum(MIN_RATIO, real_china_us_ratio(market, catalog) ** RATIO_EXPONENT)
    return ratio


def _pin_china_us_ratio(
    tokens: Floats, models: list[PlannedModel], market: Market, catalog: Catalog
) -> None:
    china = np.array([m.info.origin_bloc == "China" for m in models])
    us = np.array([m.info.origin_bloc == "US" for m in models])
    target = target_china_us_ratio(market, catalog)
    factor = target * tokens[:, us].sum(axis=1) / tokens[:, china].sum(axis=1)
    tokens[:, china] *= factor[:, None]


@lru_cache(maxsize=2)
def default_plan() -> MarketPlan:
    """The plan of the shipped market data and catalog (immutable: cached)."""
    return build_plan()
