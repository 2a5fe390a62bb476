"""Synthetic gateway traffic whose weekly per-model volumes follow real figures.

Every model-week of the shipped market data (``market_data``) becomes a batch
of events: as many as its share of requests allows, carrying exactly its
tokens times one scale factor shared by all weeks and models, so every weekly
share of every model equals the real one up to integer rounding. The rest of
each event (provider, category, region, user, latency ...) is plausible noise.

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

from tokenshare.producers.market_data import Market, ModelWeek, Week, load_market
from tokenshare.schema.event import MAX_TOKENS, TokenEvent

Int64s = NDArray[np.int64]
Floats = NDArray[np.float64]

#: Events turned into dicts at a time; bounds the size of Python object lists.
CHUNK: Final = 16_384
_MS_PER_DAY: Final = 86_400_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

# Per-request token spread. Agent traffic re-sends long contexts, so prompts
# are heavier-tailed than completions; the cap keeps single requests plausible.
_SIGMA_PROMPT: Final = 1.1
_SIGMA_COMPLETION: Final = 0.9
_PROMPT_COMPLETION_CORR: Final = 0.35
_TAIL_CAP: Final = 40.0  # no request above 40x the mean weight of its model-week
_WEIGHT_RESOLUTION: Final = 1 << 20

CHINA_AUTHORS: Final = frozenset(
    {"deepseek", "qwen", "moonshotai", "minimax", "z-ai", "xiaomi", "tencent", "stepfun"}
)

# --------------------------------------------------------------------------- providers

_CLOSED_PROVIDER: Final = {"anthropic": "Anthropic", "google": "Google", "x-ai": "xAI"}
_FIRST_PARTY: Final = {
    "deepseek": "DeepSeek",
    "qwen": "Alibaba",
    "moonshotai": "Moonshot AI",
    "minimax": "MiniMax",
    "z-ai": "Z.AI",
    "xiaomi": "Xiaomi",
    "tencent": "Tencent",
    "stepfun": "StepFun",
    "arcee-ai": "Arcee AI",
    "nvidia": "Nvidia",
}
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
#: Share of an open model's traffic served by its author's own API.
_FIRST_PARTY_SHARE: Final = 0.35


def _provider_mix(model: ModelWeek) -> tuple[tuple[str, ...], Floats]:
    author = model.author
    if author in _CLOSED_PROVIDER:
        return (_CLOSED_PROVIDER[author],), np.ones(1)
    if author == "openai" and "gpt-oss" not in model.slug:
        return ("OpenAI",), np.ones(1)
    if author == "openrouter":  # cloaked pre-release models
        return ("Stealth",), np.ones(1)
    names = [h for h, _ in _HOSTS]
    weights = [w for _, w in _HOSTS]
    if author in _FIRST_PARTY:
        weights = [w * (1 - _FIRST_PARTY_SHARE) / sum(weights) for w in weights]
        names.append(_FIRST_PARTY[author])
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


# --------------------------------------------------------------------------- mixes

_CATEGORIES: Final = (
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
# Relative weights of the non-programming categories.
_OTHER_CATEGORY_WEIGHTS: Final = np.array(
    [0.30, 0.08, 0.08, 0.07, 0.05, 0.05, 0.03, 0.05, 0.04, 0.16, 0.09]
)
_PROGRAMMING_FIRST: Final = 0.45  # share in the first week of the market data
_PROGRAMMING_LAST: Final = 0.55  # share in the last week

_REGIONS: Final = (
    "us-east",
    "us-west",
    "eu-west",
    "eu-central",
    "ap-southeast",
    "ap-east",
    "sa-east",
)
_REGION_P: Final = np.array([0.30, 0.17, 0.18, 0.10, 0.11, 0.10, 0.04])

_LANGUAGES: Final = ("en", "zh", "es", "ja", "de", "fr", "pt", "ko", "ru")
_LANGUAGE_P: Final = np.array([0.64, 0.09, 0.05, 0.04, 0.04, 0.04, 0.04, 0.03, 0.03])
# Chinese models see more Chinese-language traffic.
_LANGUAGE_P_CHINA: Final = np.array([0.55, 0.20, 0.05, 0.03, 0.04, 0.03, 0.04, 0.03, 0.03])

_FINISH: Final = ("stop", "length", "tool_calls")
_STREAMED_P: Final = 0.86
_LENGTH_P: Final = 0.03

_APPS: Final = 300
_USERS: Final = 20_000


def _zipf_cdf(n: int, exponent: float) -> Floats:
    p = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    cdf: Floats = np.cumsum(p)
    out: Floats = cdf / cdf[-1]
    return out


_APP_CDF: Final = _zipf_cdf(_APPS, 1.1)
_USER_CDF: Final = _zipf_cdf(_USERS, 1.0)
_APP_IDS: Final = np.array([f"app-{i:04d}" for i in range(1, _APPS + 1)], dtype=object)
# Opaque, stable ids: a hash, so nothing about the user can be read from it.
_USER_IDS: Final = np.array(
    [
        "u-" + hashlib.blake2b(f"tokenshare-user-{i}".encode(), digest_size=8).hexdigest()
        for i in range(_USERS)
    ],
    dtype=object,
)


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

    model: ModelWeek
    events: int
    prompt: int
    completion: int
    reasoning: int
    cached: int


@dataclass(frozen=True, slots=True)
class _WeekPlan:
    week: Week
    ordinal: int  # position in the whole market, so seeds do not depend on the filter
    rows: tuple[_Row, ...]

    @property
    def events(self) -> int:
        return sum(r.events for r in self.rows)


def _round_ratio(num: int, den: int) -> int:
    """round(num / den), halves up, exact on integers."""
    return (2 * num + den) // (2 * den)


def _allocate_events(requests: Sequence[int], total: int) -> list[int]:
    """Largest-remainder apportionment of ``total`` with at least 1 per entry."""
    if total < len(requests):
        raise ValueError(f"{total} events cannot cover {len(requests)} model-weeks (1 each)")
    den = sum(requests)
    floors = [r * total // den for r in requests]
    rems = [r * total % den for r in requests]
    counts = [max(1, f) for f in floors]
    gap = total - sum(counts)
    if gap > 0:  # hand out the rest by largest remainder, skipping entries lifted to 1
        order = sorted(
            (i for i in range(len(counts)) if floors[i] >= 1), key=lambda i: (-rems[i], i)
        )
        for i in order[:gap]:
            counts[i] += 1
    while gap < 0:  # the minimum of 1 overshot: take back from the smallest remainders
        order = sorted((i for i in range(len(counts)) if counts[i] > 1), key=lambda i: (rems[i], i))
        for i in order[:-gap]:
            counts[i] -= 1
        gap = total - sum(counts)
    return counts


def _plan(cfg: SimConfig, market: Market) -> list[_WeekPlan]:
    if cfg.events < 1:
        raise ValueError("events must be positive")
    if cfg.seed < 0:
        raise ValueError("seed must be non-negative")
    if not 0.0 <= cfg.invalid_ratio <= 1.0:
        raise ValueError("invalid_ratio must be within [0, 1]")
    first, last = cfg.weeks if cfg.weeks else (None, None)
    weeks = market.select(first, last)
    if not weeks:
        raise ValueError(f"no week collected within {cfg.weeks}")
    ordinal = {w.collected_on: i for i, w in enumerate(market.weeks)}
    models = [m for w in weeks for m in w.models]
    real_requests = sum(m.usage.request_count for m in models)
    counts = iter(_allocate_events([m.usage.request_count for m in models], cfg.events))

    def scaled(tokens: int) -> int:  # tokens * scale, scale = events / real requests
        return _round_ratio(tokens * cfg.events, real_requests)

    return [
        _WeekPlan(
            week=w,
            ordinal=ordinal[w.collected_on],
            rows=tuple(
                _Row(
                    model=m,
                    events=next(counts),
                    prompt=scaled(m.usage.prompt_tokens),
                    completion=scaled(m.usage.completion_tokens),
                    reasoning=scaled(m.usage.reasoning_tokens),
                    cached=scaled(m.usage.cached_tokens),
                )
                for m in w.models
            ),
        )
        for w in weeks
    ]


def expected_weekly_tokens(cfg: SimConfig) -> dict[tuple[str, str], int]:
    """(week_start, raw slug) -> prompt + completion tokens ``simulate(cfg)`` emits."""
    return {
        (p.week.week_start.isoformat(), r.model.slug): r.prompt + r.completion
        for p in _plan(cfg, load_market())
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


def _heavy_tail(z: Floats, sigma: float) -> Int64s:
    """Integer weights of a capped lognormal."""
    w = np.exp(sigma * z)
    w = np.minimum(w, _TAIL_CAP * w.mean())
    out: Int64s = np.maximum(1, np.rint(w * (_WEIGHT_RESOLUTION / w.max()))).astype(np.int64)
    return out


def _split(total: int, weights: Int64s) -> Int64s:
    """Like ``_apportion`` but every request gets at least one token when possible."""
    n = len(weights)
    if total >= n:
        out: Int64s = _apportion(total - n, weights) + 1
        return out
    return _apportion(total, weights)


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


def _programming_share(ordinal: int, n_weeks: int) -> float:
    t = ordinal / max(1, n_weeks - 1)
    return _PROGRAMMING_FIRST + (_PROGRAMMING_LAST - _PROGRAMMING_FIRST) * t


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


def _generate_week(plan: _WeekPlan, n_weeks: int, rng: np.random.Generator) -> _WeekArrays:
    n = plan.events
    parts: dict[str, list[Any]] = {
        k: []
        for k in (
            "model",
            "provider",
            "prompt",
            "completion",
            "reasoning",
            "cached",
            "cost",
            "speed",
            "language",
        )
    }
    for row in plan.rows:
        m, k = row.model, row.events
        z1 = rng.standard_normal(k)
        z2 = rng.standard_normal(k)
        zc = _PROMPT_COMPLETION_CORR * z1 + np.sqrt(1 - _PROMPT_COMPLETION_CORR**2) * z2
        prompt = _split(row.prompt, _heavy_tail(z1, _SIGMA_PROMPT))
        completion = _split(row.completion, _heavy_tail(zc, _SIGMA_COMPLETION))
        parts["prompt"].append(prompt)
        parts["completion"].append(completion)
        parts["reasoning"].append(_apportion(row.reasoning, completion))
        parts["cached"].append(_apportion(row.cached, prompt))
        price_p, price_c = (0.0, 0.0) if m.is_free else (m.prompt_price, m.completion_price)
        parts["cost"].append(np.round(prompt * price_p + completion * price_c, 10))
        names, p = _provider_mix(m)
        parts["provider"].append(np.asarray(names, dtype=object)[rng.choice(len(names), k, p=p)])
        parts["model"].append(np.full(k, m.slug, dtype=object))
        parts["speed"].append(np.full(k, _decode_speed(m.slug)))
        lang_p = _LANGUAGE_P_CHINA if m.author in CHINA_AUTHORS else _LANGUAGE_P
        parts["language"].append(rng.choice(len(_LANGUAGES), k, p=lang_p))
    col = {key: np.concatenate(v) for key, v in parts.items()}

    # Time: uniform over the covered week, shaped by the time of day.
    cdf = _week_cdf(plan.week.week_start)
    minute = np.searchsorted(cdf, rng.random(n), side="right")
    start_ms = (datetime.combine(plan.week.week_start, datetime.min.time(), UTC) - _EPOCH) // (
        timedelta(milliseconds=1)
    )
    ts_ms = start_ms + minute * 60_000 + rng.integers(0, 60_000, n)

    prog = _programming_share(plan.ordinal, n_weeks)
    cat_p = np.concatenate(
        [[prog], (1 - prog) * _OTHER_CATEGORY_WEIGHTS / _OTHER_CATEGORY_WEIGHTS.sum()]
    )
    category = rng.choice(len(_CATEGORIES), n, p=cat_p)
    coding = category == 0
    uses_tools = rng.random(n) < np.where(coding, 0.45, 0.08)
    tool_calls = np.where(uses_tools, rng.geometric(0.45, n), 0)
    finish = np.where(
        uses_tools & (rng.random(n) < 0.85),
        2,
        np.where(rng.random(n) < _LENGTH_P, 1, 0),
    )
    prompt, completion, cached = col["prompt"], col["completion"], col["cached"]
    ttft = 150.0 + rng.lognormal(np.log(350.0), 0.6, n) + (prompt - cached) * 0.03 + cached * 0.004
    decode = completion / (col["speed"] * rng.lognormal(0.0, 0.3, n)) * 1000.0
    latency = np.minimum(np.rint(ttft + decode), 3_600_000).astype(np.int64)

    order = np.argsort(ts_ms, kind="stable")
    return _WeekArrays(
        ts_ms=ts_ms[order],
        model=col["model"][order],
        provider=col["provider"][order],
        prompt=prompt[order],
        completion=completion[order],
        reasoning=col["reasoning"][order],
        cached=cached[order],
        cost=col["cost"][order],
        app=np.searchsorted(_APP_CDF, rng.random(n), side="right"),
        user=np.searchsorted(_USER_CDF, rng.random(n), side="right"),
        category=category[order],
        region=rng.choice(len(_REGIONS), n, p=_REGION_P),
        language=col["language"][order],
        tool_calls=tool_calls[order],
        latency=latency[order],
        finish=finish[order],
        streamed=rng.random(n) < _STREAMED_P,
    )


_CAT_ARR: Final = np.array(_CATEGORIES, dtype=object)
_REGION_ARR: Final = np.array(_REGIONS, dtype=object)
_LANG_ARR: Final = np.array(_LANGUAGES, dtype=object)
_FINISH_ARR: Final = np.array(_FINISH, dtype=object)


def _dicts(a: _WeekArrays, lo: int, hi: int, seed: int, first_id: int) -> list[dict[str, object]]:
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
            _USER_IDS[a.user[s]].tolist(),
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
    market = load_market()
    plans = _plan(cfg, market)
    n_weeks = len(market.weeks)
    n_bad = round(cfg.events * cfg.invalid_ratio)
    bad_per_week = _apportion(n_bad, np.array([p.events for p in plans], dtype=np.int64))
    next_id = 0
    next_bad = cfg.events
    for plan, k_bad in zip(plans, bad_per_week.tolist(), strict=True):
        rng = np.random.default_rng([cfg.seed, plan.ordinal, 0])
        arrays = _generate_week(plan, n_weeks, rng)
        n = plan.events
        bad_rng = np.random.default_rng([cfg.seed, plan.ordinal, 1])
        bad_at = np.sort(bad_rng.integers(0, n + 1, k_bad))  # insert before valid event j
        bad_kind = bad_rng.integers(0, _INVALID_KINDS, k_bad)
        b = 0
        for lo in range(0, n, CHUNK):
            hi = min(n, lo + CHUNK)
            batch = _dicts(arrays, lo, hi, cfg.seed, next_id + lo)
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
