"""Synthetic gateway traffic: a market that tells the story of the public reports.

The weekly volume of every model comes from the market plan (``market_plan``:
the real weekly top 10 with life cycles, a long tail of catalogued and cloaked
models, China:US ratio pinned to the real series). Each model-week becomes as
many events as its tokens allow at that week's request size, carrying exactly
its planned tokens times one scale factor shared by all weeks and models.

Everything else follows the reports on OpenRouter traffic (OpenRouter and
a16z, "State of AI", Dec 2025; press reports on the 2026 China/US crossover),
with trends that run from the reports' first figure in the first week to
their last in the last week:

- tasks: a token mix per segment (proprietary, China-origin open, other open),
  programming growing from ~11% to over 50% of tokens; programming prompts are
  3.5x longer than the rest;
- request size: average prompt ~1.5K -> ~6K tokens, completion about doubling;
- reasoning: the share of tokens in reasoning requests ~6% -> over 60%;
- tool calls: requests with tool calls carry ~15% of tokens every week;
- regions: Asia's share of traffic (and spend) ~13% -> ~31%, North America
  under 50%; languages follow the users (English over 80%, Chinese ~5%);
- users and apps from ``population`` (churn, foundational cohorts, a boomerang);
- cost: list prices with cache discounts; ``:free`` variants cost nothing.

Generation is vectorised with numpy per week and emitted in chunks, so memory
is bounded by one week of arrays, never by the whole run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import numpy as np
import orjson
from numpy.typing import NDArray
from pydantic import ValidationError

from tokenshare.producers.market_plan import MarketPlan, PlannedModel, default_plan
from tokenshare.producers.population import LANGUAGES, REGIONS, Population
from tokenshare.schema.event import MAX_TOKENS, TokenEvent

Int64s = NDArray[np.int64]
Floats = NDArray[np.float64]

#: Events turned into dicts at a time; bounds the size of Python object lists.
CHUNK: Final = 16_384
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

# Per-request token spread within a category. Agent traffic re-sends long
# contexts, so prompts are heavier-tailed than completions.
_SIGMA_PROMPT: Final = 1.0
_SIGMA_COMPLETION: Final = 0.8
_PROMPT_COMPLETION_CORR: Final = 0.35
_TAIL_CAP: Final = 40.0  # no request above 40x the mean weight of its model-week
_WEIGHT_RESOLUTION: Final = 1 << 20

# --------------------------------------------------------------------------- tasks

CATEGORIES: Final = (
    "programming",
    "roleplay",
    "translation",
    "marketing",
    "science",
    "academia",
    "health",
    "legal",
    "finance",
    "seo",
    "technology",
    "trivia",
)
#: Token share of each category (in CATEGORIES order) per segment, first -> last week.
TASK_MIX: Final = {
    "closed": (
        (0.12, 0.20, 0.06, 0.07, 0.08, 0.07, 0.05, 0.04, 0.05, 0.06, 0.10, 0.10),
        (0.78, 0.03, 0.02, 0.02, 0.02, 0.01, 0.01, 0.01, 0.01, 0.02, 0.06, 0.01),
    ),
    "china_open": (
        (0.10, 0.45, 0.08, 0.04, 0.04, 0.04, 0.02, 0.02, 0.03, 0.04, 0.06, 0.08),
        (0.48, 0.21, 0.05, 0.03, 0.03, 0.02, 0.01, 0.01, 0.02, 0.02, 0.08, 0.04),
    ),
    "other_open": (
        (0.04, 0.74, 0.05, 0.02, 0.02, 0.02, 0.01, 0.01, 0.01, 0.02, 0.03, 0.03),
        (0.35, 0.45, 0.04, 0.02, 0.02, 0.02, 0.01, 0.01, 0.01, 0.02, 0.03, 0.02),
    ),
}
#: Relative prompt and completion size of a request, per category.
PROMPT_FACTOR: Final = np.array([3.5, 1, 1, 1, 1.2, 1, 1, 1, 1, 1, 1.6, 1], dtype=np.float64)
COMPLETION_FACTOR: Final = np.array([1.4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], dtype=np.float64)
#: Average prompt and completion tokens per request, first -> last week.
PROMPT_PER_REQUEST: Final = (1_300.0, 6_600.0)
COMPLETION_PER_REQUEST: Final = (450.0, 900.0)
#: Share of tokens in requests that produce reasoning tokens, first -> last week.
REASONING_SHARE: Final = (0.06, 0.64)
#: Share of tokens in requests with tool calls (every week), and how likely each
#: category is to call tools, relatively.
TOOL_SHARE: Final = 0.15
_TOOL_BASE: Final = np.array(
    [0.30, 0.03, 0.02, 0.04, 0.08, 0.04, 0.04, 0.04, 0.06, 0.04, 0.18, 0.04]
)
#: Share of a prompt read from the provider's cache, per category.
_CACHED_SHARE: Final = np.array(
    [0.60, 0.25, 0.10, 0.15, 0.20, 0.20, 0.15, 0.20, 0.20, 0.15, 0.40, 0.10]
)
#: Traffic by region, first -> last week (in population.REGIONS order): Asia
#: (ap-*) 13% -> 31%, North America (us-*) under 50%.
REGION_MIX: Final = (
    (0.30, 0.19, 0.17, 0.11, 0.07, 0.06, 0.10),
    (0.25, 0.16, 0.11, 0.08, 0.16, 0.17, 0.07),
)
ASIA: Final = frozenset({"ap-southeast", "ap-east"})

_FINISH: Final = ("stop", "length", "tool_calls")
_STREAMED_P: Final = 0.86
_LENGTH_P: Final = 0.03

# --------------------------------------------------------------------------- providers

_HOSTS: Final = (
    ("Together", 0.16),
    ("Fireworks", 0.15),
    ("DeepInfra", 0.15),
    ("Novita", 0.11),
    ("SiliconFlow", 0.09),
    ("Chutes", 0.09),
    ("Parasail", 0.07),
    ("Baseten", 0.07),
    ("AtlasCloud", 0.05),
    ("GMICloud", 0.06),
)
#: Labs with an API of their own for their open models, and its share of their traffic.
_FIRST_PARTY_OPEN: Final = frozenset(
    {"deepseek", "qwen", "moonshotai", "minimax", "z-ai", "xiaomi", "tencent", "stepfun",
     "mistralai", "arcee-ai", "nvidia", "baidu", "meituan", "cohere"}
)  # fmt: skip
_FIRST_PARTY_SHARE: Final = 0.35


def _provider_name(lab: str) -> str:
    """A lab's display name as a provider name: "Z.ai (Zhipu AI)" -> "Z.ai"."""
    return lab.partition(" (")[0]


def _provider_mix(model: PlannedModel) -> tuple[tuple[str, ...], Floats]:
    info = model.info
    if info.author == "openrouter":  # cloaked pre-release models
        return ("Stealth",), np.ones(1)
    if info.weights != "open":
        return (_provider_name(info.lab) if info.lab != "unidentified" else info.author,), np.ones(
            1
        )
    names = [h for h, _ in _HOSTS]
    weights = [w for _, w in _HOSTS]
    if info.author in _FIRST_PARTY_OPEN:
        weights = [w * (1 - _FIRST_PARTY_SHARE) / sum(weights) for w in weights]
        names.append(_provider_name(info.lab))
        weights.append(_FIRST_PARTY_SHARE)
    p = np.asarray(weights, dtype=np.float64)
    return tuple(names), p / p.sum()


def _decode_speed(slug: str) -> float:
    """Typical output tokens per second: small/fast models stream faster."""
    if any(k in slug for k in ("flash", "fast", "lite", "mini", "nano")):
        return 140.0
    if "opus" in slug or "pro" in slug:
        return 45.0
    return 70.0


# --------------------------------------------------------------------------- config & plan


@dataclass(frozen=True)
class SimConfig:
    events: int = 200_000  # valid events across all selected weeks
    seed: int = 7
    weeks: tuple[str, str] | None = None  # optional (first, last) collected_on filter
    # Invalid payloads mixed in, as a fraction of ``events``: round(events *
    # invalid_ratio) of them come on top of the valid events, which stay
    # identical to a run without them.
    invalid_ratio: float = 0.0


@dataclass(frozen=True, slots=True)
class _Row:
    """What one model-week must emit."""

    model: PlannedModel
    index: int  # column in the plan
    events: int
    prompt: int
    completion: int


@dataclass(frozen=True, slots=True)
class _Week:
    """The calendar and the trends of one ISO week of the market."""

    start: date
    ordinal: int  # position in the whole market, so seeds do not depend on the filter
    progress: float  # 0 in the first week of the market, 1 in the last
    category_p: dict[str, Floats]  # segment -> probability of each category per request
    prompt_base: float  # prompt tokens of a request with factor 1
    completion_base: float
    reasoning_p: float  # probability that a reasoning-capable model reasons
    tool_p: Floats  # per category
    region_p: Floats


@dataclass(frozen=True, slots=True)
class _WeekPlan:
    week: _Week
    rows: tuple[_Row, ...]

    @property
    def events(self) -> int:
        return sum(r.events for r in self.rows)


def _lerp(pair: tuple[Sequence[float], Sequence[float]] | tuple[float, float], t: float) -> Any:
    lo, hi = (np.asarray(p, dtype=np.float64) for p in pair)
    return lo + (hi - lo) * t


def _token_mix(segment: str, t: float) -> Floats:
    mix: Floats = _lerp(TASK_MIX[segment], t)
    out: Floats = mix / mix.sum()
    return out


def _week(plan: MarketPlan, w: int) -> _Week:
    """Turn the week's targets (token shares, averages) into per-request probabilities."""
    t = plan.progress(w)
    tokens = plan.tokens[w]
    segments = tuple(TASK_MIX)
    seg_tokens = np.array(
        [
            sum(v for v, m in zip(tokens, plan.models, strict=True) if m.segment == s)
            for s in segments
        ]
    )
    prompt_avg = float(_lerp(PROMPT_PER_REQUEST, t))
    completion_avg = float(_lerp(COMPLETION_PER_REQUEST, t))
    # A category's token share q_c = p_c * size_c / sum(p * size): so p_c ~ q_c / size_c.
    size = (prompt_avg * PROMPT_FACTOR + completion_avg * COMPLETION_FACTOR) / (
        prompt_avg + completion_avg
    )
    category_p = {}
    mean_pf = mean_cf = 0.0
    for s, volume in zip(segments, seg_tokens, strict=True):
        p = _token_mix(s, t) / size
        p /= p.sum()
        category_p[s] = p
        per_request = float(p @ size)
        events = volume / per_request  # relative request count of the segment
        mean_pf += events * float(p @ PROMPT_FACTOR)
        mean_cf += events * float(p @ COMPLETION_FACTOR)
    n_rel = sum(v / float(category_p[s] @ size) for s, v in zip(segments, seg_tokens, strict=True))
    overall = sum(_token_mix(s, t) * v for s, v in zip(segments, seg_tokens, strict=True))
    overall = overall / overall.sum()
    capable = sum(
        v for v, m in zip(tokens, plan.models, strict=True) if m.info.reasoning == "reasoning"
    )
    return _Week(
        start=plan.week_starts[w],
        ordinal=w,
        progress=t,
        category_p=category_p,
        prompt_base=prompt_avg * n_rel / mean_pf,
        completion_base=completion_avg * n_rel / mean_cf,
        reasoning_p=min(1.0, float(_lerp(REASONING_SHARE, t)) * tokens.sum() / capable),
        tool_p=np.minimum(0.95, _TOOL_BASE * TOOL_SHARE / float(overall @ _TOOL_BASE)),
        region_p=_lerp(REGION_MIX, t),
    )


def _request_tokens(week: _Week, segment: str) -> tuple[float, float]:
    """Expected prompt and completion tokens of one request of a segment."""
    p = week.category_p[segment]
    return week.prompt_base * float(p @ PROMPT_FACTOR), week.completion_base * float(
        p @ COMPLETION_FACTOR
    )


def _largest_remainder(weights: Floats, total: int) -> Int64s:
    """Integers proportional to ``weights`` summing to ``total`` (no minimum)."""
    if total < 0 or not weights.sum() > 0:
        raise ValueError("cannot apportion")
    exact = weights * (total / weights.sum())
    out: Int64s = np.floor(exact).astype(np.int64)
    short = total - int(out.sum())
    if short:
        out[np.argsort(-(exact - out), kind="stable")[:short]] += 1
    return out


def _plan(cfg: SimConfig, plan: MarketPlan) -> list[_WeekPlan]:
    if cfg.events < 1:
        raise ValueError("events must be positive")
    if cfg.seed < 0:
        raise ValueError("seed must be non-negative")
    if not 0.0 <= cfg.invalid_ratio <= 1.0:
        raise ValueError("invalid_ratio must be within [0, 1]")
    lo = date.fromisoformat(cfg.weeks[0]) if cfg.weeks else date.min
    hi = date.fromisoformat(cfg.weeks[1]) if cfg.weeks else date.max
    selected = [w for w, c in enumerate(plan.collected_on) if lo <= c <= hi]
    if not selected:
        raise ValueError(f"no week collected within {cfg.weeks}")
    weeks = {w: _week(plan, w) for w in selected}
    cells: list[tuple[int, int, float, float, float]] = []  # week, model, tokens, prompt frac, req
    for w in selected:
        sizes = {s: _request_tokens(weeks[w], s) for s in TASK_MIX}
        for j, model in enumerate(plan.models):
            volume = float(plan.tokens[w, j])
            if volume <= 0:
                continue
            prompt, completion = sizes[model.segment]
            cells.append(
                (w, j, volume, prompt / (prompt + completion), volume / (prompt + completion))
            )
    requests = np.array([c[4] for c in cells])
    counts = _largest_remainder(requests, cfg.events)
    scale = cfg.events / requests.sum()  # tokens emitted per planned token
    rows: dict[int, list[_Row]] = {w: [] for w in selected}
    for (w, j, volume, prompt_frac, _), n in zip(cells, counts.tolist(), strict=True):
        if n == 0:
            continue
        tokens = max(n, round(volume * scale))
        prompt = round(tokens * prompt_frac)
        rows[w].append(_Row(plan.models[j], j, n, prompt, tokens - prompt))
    return [_WeekPlan(weeks[w], tuple(rows[w])) for w in selected]


def expected_weekly_tokens(cfg: SimConfig) -> dict[tuple[str, str], int]:
    """(ISO week start, slug) -> prompt + completion tokens ``simulate(cfg)`` emits."""
    return {
        (p.week.start.isoformat(), r.model.slug): r.prompt + r.completion
        for p in _plan(cfg, default_plan())
        for r in p.rows
    }


# --------------------------------------------------------------------------- integer splits


def _apportion(total: int, weights: Int64s) -> Int64s:
    """Split ``total`` into integers proportional to ``weights``, summing exactly.

    Largest remainder in exact integer arithmetic. With ``weights`` as caps and
    total <= sum(weights), no part exceeds its weight (used to keep reasoning
    within completion and cached within prompt).
    """
    out = np.zeros(len(weights), dtype=np.int64)
    wsum = int(weights.sum())
    if total == 0 or wsum == 0:
        if total:
            raise ValueError("cannot split tokens over zero weights")
        return out
    if total * int(weights.max()) < 1 << 62:
        num = weights * np.int64(total)
        base, rem = np.divmod(num, np.int64(wsum))
    else:  # too big for int64: Python integers (slow, only for huge runs)
        big = weights.astype(object) * total
        base = (big // wsum).astype(np.int64)
        rem = (big % wsum).astype(np.float64)  # only the order matters
    short = total - int(base.sum())
    if short:
        base[np.argpartition(-rem, short - 1)[:short]] += 1
    return base


def _heavy_tail(
    z: Floats, sigma: float, factor: Floats, row_of: Int64s, starts: Int64s, counts: Int64s
) -> Int64s:
    """Integer weights of a capped lognormal per row (model-week), times a size factor."""
    w = np.exp(sigma * z)
    mean = np.add.reduceat(w, starts) / counts
    w = np.minimum(w, _TAIL_CAP * mean[row_of]) * factor
    top = np.maximum.reduceat(w, starts)
    out: Int64s = np.maximum(1, np.rint(w * (_WEIGHT_RESOLUTION / top[row_of]))).astype(np.int64)
    return out


def _split_rows(
    totals: Int64s, weights: Int64s, row_of: Int64s, starts: Int64s, counts: Int64s
) -> Int64s:
    """Per row, split its total over its requests in proportion to ``weights``.

    Exact integers (largest remainder within each row, ties by position); every
    request gets at least one token when the row has enough. Vectorised over
    all rows of a week at once.
    """
    floor = np.where(totals >= counts, 1, 0).astype(np.int64)
    rest = totals - floor * counts
    wsum = np.add.reduceat(weights, starts)
    num = weights * rest[row_of]
    base, rem = np.divmod(num, wsum[row_of])
    short = rest - np.add.reduceat(base, starts)
    order = np.lexsort((np.arange(len(weights)), -rem, row_of))
    rank = np.arange(len(weights)) - starts[row_of[order]]
    base[order[rank < short[row_of[order]]]] += 1
    out: Int64s = base + floor[row_of]
    return out


# --------------------------------------------------------------------------- generation


def _week_cdf(start: date) -> Floats:
    """Minute-of-week CDF: afternoon-UTC peak (US and Europe awake), quieter weekends."""
    minutes = np.arange(7 * 1440)
    hour = (minutes % 1440) / 60.0
    diurnal = 1.0 + 0.55 * np.cos(2 * np.pi * (hour - 15.0) / 24.0)
    weekday = np.array([(start + timedelta(days=d)).weekday() for d in range(7)])
    day_factor = np.where(weekday >= 5, 0.8, 1.0)[minutes // 1440]
    cdf: Floats = np.cumsum(diurnal * day_factor)
    out: Floats = cdf / cdf[-1]
    return out


@dataclass(slots=True)
class _WeekArrays:
    """Columns of one week's events, sorted by time."""

    ts_ms: Int64s
    model: NDArray[np.object_]
    provider: NDArray[np.object_]
    prompt: Int64s
    completion: Int64s
    reasoning: Int64s
    cached: Int64s
    cost: Floats
    app: Int64s
    user: Int64s
    category: Int64s
    region: Int64s
    language: Int64s
    tool_calls: Int64s
    latency: Int64s
    finish: Int64s
    streamed: NDArray[np.bool_]


def _cdf(p: Floats) -> Floats:
    out: Floats = np.cumsum(p)
    out[-1] = 1.0 + 1e-12  # searchsorted never runs past the end
    return out


def _providers(rows: Sequence[_Row], row_of: Int64s, u: Floats) -> NDArray[np.object_]:
    """Who served each request: the row's single provider, or one drawn from its mix."""
    out = np.empty(len(row_of), dtype=object)
    mixes: dict[tuple[str, ...], tuple[list[int], Floats]] = {}
    for i, row in enumerate(rows):
        names, p = _provider_mix(row.model)
        mixes.setdefault(names, ([], p))[0].append(i)
    for names, (members, p) in mixes.items():
        at = np.isin(row_of, members)
        if len(names) == 1:
            out[at] = names[0]
        else:
            out[at] = np.asarray(names, dtype=object)[np.searchsorted(_cdf(p), u[at])]
    return out


def _generate_week(plan: _WeekPlan, people: Population, rng: np.random.Generator) -> _WeekArrays:
    """Draw per request what can be drawn for the whole week at once; split tokens per row."""
    week, rows = plan.week, plan.rows
    n = plan.events
    counts = np.array([r.events for r in rows], dtype=np.int64)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    row_of = np.repeat(np.arange(len(rows)), counts)

    segment = np.array([r.model.segment for r in rows], dtype=object)[row_of]
    category = np.zeros(n, dtype=np.int64)
    u = rng.random(n)
    for s, p in week.category_p.items():
        at = segment == s
        category[at] = np.searchsorted(_cdf(p), u[at], side="right")
    z1 = rng.standard_normal(n)
    zc = _PROMPT_COMPLETION_CORR * z1 + np.sqrt(1 - _PROMPT_COMPLETION_CORR**2) * (
        rng.standard_normal(n)
    )
    starts = bounds[:-1]
    prompt = _split_rows(
        np.array([r.prompt for r in rows], dtype=np.int64),
        _heavy_tail(z1, _SIGMA_PROMPT, PROMPT_FACTOR[category], row_of, starts, counts),
        row_of,
        starts,
        counts,
    )
    completion = _split_rows(
        np.array([r.completion for r in rows], dtype=np.int64),
        _heavy_tail(zc, _SIGMA_COMPLETION, COMPLETION_FACTOR[category], row_of, starts, counts),
        row_of,
        starts,
        counts,
    )
    provider = _providers(rows, row_of, rng.random(n))

    capable = np.array([r.model.info.reasoning == "reasoning" for r in rows])[row_of]
    reasons = capable & (rng.random(n) < week.reasoning_p)
    reasoning = np.where(reasons, np.rint(completion * rng.uniform(0.35, 0.8, n)), 0).astype(
        np.int64
    )
    cached = np.minimum(
        prompt, np.rint(prompt * _CACHED_SHARE[category] * rng.uniform(0.5, 1.3, n))
    ).astype(np.int64)
    price_in = np.array([r.model.prompt_price for r in rows])[row_of]
    price_out = np.array([r.model.completion_price for r in rows])[row_of]
    discount = np.array([r.model.cache_discount for r in rows])[row_of]
    cost = np.round(
        (prompt - cached) * price_in + cached * price_in * discount + completion * price_out, 10
    )
    uses_tools = rng.random(n) < week.tool_p[category]
    tool_calls = np.where(uses_tools, rng.geometric(0.45, n), 0)

    region = np.searchsorted(_cdf(week.region_p), rng.random(n), side="right")
    user = np.empty(n, dtype=np.int64)
    u_user = rng.random(n)
    for i, row in enumerate(rows):
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        regions = region[lo:hi]
        m = row.model
        for r, k in enumerate(np.bincount(regions, minlength=len(REGIONS)).tolist()):
            if not k:
                continue
            at = np.flatnonzero(regions == r) + lo
            pool = people.users_for(week.ordinal, m.slug, m.info.model, m.info.author, r, k)
            user[at] = pool[(u_user[at] * len(pool)).astype(np.int64)]

    # Time: uniform over the ISO week, shaped by the time of day.
    cdf = _week_cdf(week.start)
    minute = np.searchsorted(cdf, rng.random(n), side="right")
    start_ms = (datetime.combine(week.start, datetime.min.time(), UTC) - _EPOCH) // (
        timedelta(milliseconds=1)
    )
    ts_ms = start_ms + minute * 60_000 + rng.integers(0, 60_000, n)

    finish = np.where(
        (tool_calls > 0) & (rng.random(n) < 0.85),
        2,
        np.where(rng.random(n) < _LENGTH_P, 1, 0),
    )
    speed = np.array([_decode_speed(r.model.slug) for r in rows])[row_of]
    ttft = 150.0 + rng.lognormal(np.log(350.0), 0.6, n) + (prompt - cached) * 0.03 + cached * 0.004
    decode = completion / (speed * rng.lognormal(0.0, 0.3, n)) * 1000.0
    latency = np.minimum(np.rint(ttft + decode), 3_600_000).astype(np.int64)
    model = np.array([r.model.slug for r in rows], dtype=object)[row_of]
    order = np.argsort(ts_ms, kind="stable")
    return _WeekArrays(
        ts_ms=ts_ms[order],
        model=model[order],
        provider=provider[order],
        prompt=prompt[order],
        completion=completion[order],
        reasoning=reasoning[order],
        cached=cached[order],
        cost=cost[order],
        app=np.asarray(people.app, dtype=np.int64)[user][order],
        user=user[order],
        category=category[order],
        region=region[order],
        language=np.asarray(people.language, dtype=np.int64)[user][order],
        tool_calls=tool_calls[order],
        latency=latency[order],
        finish=finish[order],
        streamed=rng.random(n) < _STREAMED_P,
    )


_CAT_ARR: Final = np.array(CATEGORIES, dtype=object)
_REGION_ARR: Final = np.array(REGIONS, dtype=object)
_LANG_ARR: Final = np.array(LANGUAGES, dtype=object)
_FINISH_ARR: Final = np.array(_FINISH, dtype=object)
_APP_IDS: Final = np.array([f"app-{i:04d}" for i in range(1, 1001)], dtype=object)


def _user_ids(seed: int, first: int, count: int) -> NDArray[np.object_]:
    # Opaque, stable ids: a hash, so nothing about the user can be read from it.
    return np.array(
        [
            "u-"
            + hashlib.blake2b(f"tokenshare-user-{seed}-{i}".encode(), digest_size=8).hexdigest()
            for i in range(first, count)
        ],
        dtype=object,
    )


def _dicts(
    a: _WeekArrays, lo: int, hi: int, seed: int, first_id: int, users: NDArray[np.object_]
) -> list[dict[str, object]]:
    s = slice(lo, hi)
    ts = np.datetime_as_string(a.ts_ms[s].astype("datetime64[ms]"), unit="ms", timezone="UTC")
    ids = [f"sim{seed}-{i:09d}" for i in range(first_id, first_id + hi - lo)]
    return [
        {
            "event_id": eid,
            "ts": t,
            "model": mo,
            "provider": pv,
            "prompt_tokens": pt,
            "completion_tokens": ct,
            "reasoning_tokens": rt,
            "cached_tokens": kt,
            "cost_usd": co,
            "app_id": ap,
            "user_id": us,
            "category": ca,
            "region": rg,
            "language": la,
            "tool_calls": tc,
            "latency_ms": lt,
            "finish_reason": fr,
            "streamed": st,
        }
        for eid, t, mo, pv, pt, ct, rt, kt, co, ap, us, ca, rg, la, tc, lt, fr, st in zip(
            ids,
            ts.tolist(),
            a.model[s].tolist(),
            a.provider[s].tolist(),
            a.prompt[s].tolist(),
            a.completion[s].tolist(),
            a.reasoning[s].tolist(),
            a.cached[s].tolist(),
            a.cost[s].tolist(),
            _APP_IDS[a.app[s]].tolist(),
            users[a.user[s]].tolist(),
            _CAT_ARR[a.category[s]].tolist(),
            _REGION_ARR[a.region[s]].tolist(),
            _LANG_ARR[a.language[s]].tolist(),
            a.tool_calls[s].tolist(),
            a.latency[s].tolist(),
            _FINISH_ARR[a.finish[s]].tolist(),
            a.streamed[s].tolist(),
            strict=True,
        )
    ]


# --------------------------------------------------------------------------- invalid payloads


def _corrupt(event: Mapping[str, object], kind: int, event_id: str) -> dict[str, object]:
    """A copy of a valid event that TokenEvent must reject, in one of 15 ways."""
    d = dict(event)
    d["event_id"] = event_id
    prompt = int(str(d["prompt_tokens"]))
    completion = int(str(d["completion_tokens"]))
    ts = str(d["ts"])
    match kind:
        case 0:
            d["prompt_tokens"] = -prompt - 1
        case 1:
            del d["model"]
        case 2:
            d["prompt_tokens"] = str(prompt)  # strict: "12" is not 12
        case 3:
            d["ts"] = "2001" + ts[4:]
        case 4:
            d["reasoning_tokens"] = completion + 1
        case 5:
            d["cached_tokens"] = prompt + 1
        case 6:
            d["model"] = str(d["model"]).split("/", 1)[1]  # no author part
        case 7:
            d["ts"] = ts.removesuffix("Z")  # no offset
        case 8:
            d["completion_tokens"] = MAX_TOKENS + 1
        case 9:
            d["cost_usd"] = -0.01
        case 10:
            del d["event_id"]
        case 11:
            d["streamed"] = "true"
        case 12:
            d["ts"] = "2999" + ts[4:]
        case 13:
            d["completion_tokens"] = None
        case _:
            d["prompt_tokens"] = prompt + 0.5
    return d


_INVALID_KINDS: Final = 15


def is_valid_payload(d: Mapping[str, object]) -> bool:
    """Whether the wire decoder would accept ``d`` as an event.

    Validates the JSON encoding, as the consumer does: in strict Python mode a
    ts string would be refused even when the event is fine.
    """
    try:
        TokenEvent.model_validate_json(orjson.dumps(d))
    except (ValidationError, TypeError, orjson.JSONEncodeError):
        return False
    return True


# --------------------------------------------------------------------------- public


def simulate(cfg: SimConfig) -> Iterator[dict[str, object]]:
    """JSON-ready event dicts in event-time order, week after week.

    Valid events have ids ``sim{seed}-{i:09d}``, i counting valid events in
    emission order; invalid payloads (``invalid_ratio``) take ids from
    ``events`` upwards and sit at random places among them. They use their own
    random stream, so the valid events do not depend on ``invalid_ratio``.
    """
    plans = _plan(cfg, default_plan())
    n_bad = round(cfg.events * cfg.invalid_ratio)
    bad_per_week = _apportion(n_bad, np.array([p.events for p in plans], dtype=np.int64))
    people = Population(np.random.default_rng([cfg.seed, 1 << 20]))
    users = np.empty(0, dtype=object)
    next_id = 0
    next_bad = cfg.events
    for plan, k_bad in zip(plans, bad_per_week.tolist(), strict=True):
        rng = np.random.default_rng([cfg.seed, plan.week.ordinal, 0])
        arrays = _generate_week(plan, people, rng)
        if len(people) > len(users):
            users = np.concatenate([users, _user_ids(cfg.seed, len(users), len(people))])
        n = plan.events
        bad_rng = np.random.default_rng([cfg.seed, plan.week.ordinal, 1])
        bad_at = np.sort(bad_rng.integers(0, n + 1, k_bad))  # insert before valid event j
        bad_kind = bad_rng.integers(0, _INVALID_KINDS, k_bad)
        b = 0
        for lo in range(0, n, CHUNK):
            hi = min(n, lo + CHUNK)
            batch = _dicts(arrays, lo, hi, cfg.seed, next_id + lo, users)
            end = hi if hi < n else n + 1  # the last chunk also takes inserts at the very end
            if b == k_bad or bad_at[b] >= end:
                yield from batch
                continue
            prev = lo
            while b < k_bad and bad_at[b] < end:
                at = int(bad_at[b])
                yield from batch[prev - lo : at - lo]
                prev = at
                base = batch[min(at, hi - 1) - lo]
                yield _corrupt(base, int(bad_kind[b]), f"sim{cfg.seed}-{next_bad:09d}")
                next_bad += 1
                b += 1
            yield from batch[prev - lo :]
        next_id += n
