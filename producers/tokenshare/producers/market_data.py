"""Real weekly usage of the top models on OpenRouter, shipped with the package.

``data/weekly_top_models.json`` is a derived copy of the figures collected by
the public repository johnbean393/openrouter-inference-stats (see
``data/README.md``). The product reads only that copy; ``rebuild`` regenerates
it from the shared research folder.

Two upstream measures exist per model-week: ``total_tokens`` is the headline
figure of the rankings page, while prompt/completion/reasoning/cached tokens
and ``request_count`` come from the model's own page. The detail is missing
(all zero) or covers a different window for a few rows, so ``ModelWeek.usage``
holds the figures the simulator reproduces: the detail unchanged where it is
consistent, otherwise the headline total with the model's per-request shape.
"""

from __future__ import annotations

import itertools
import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

#: The shipped copy, next to this module so that it is part of the package.
DATA_PATH = Path(__file__).resolve().parent / "data" / "weekly_top_models.json"
#: Where ``rebuild`` finds the upstream files inside the shared folder.
UPSTREAM_DIR = Path("data") / "openrouter-weekly-top10"
#: The figures of a snapshot describe the 7 days before its collection day.
COVERED_DAYS = 7
#: A row's detail (prompt + completion) may deviate this much, relative to the
#: week's typical detail/headline ratio, before it counts as incomplete.
DETAIL_TOLERANCE = 0.25

SOURCE = (
    "Weekly token usage of the top models on OpenRouter, from OpenRouter's public rankings "
    "page (https://openrouter.ai/rankings) and per-model activity pages, as collected by the "
    "public GitHub repository johnbean393/openrouter-inference-stats "
    "(https://github.com/johnbean393/openrouter-inference-stats), files data/*.json. "
    "Figures are redistributed unchanged; only fields were selected and the covered week "
    "(the 7 days before the collection day) was added."
)

_INT_FIELDS = (
    "total_tokens",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cached_tokens",
    "request_count",
)
_FLOAT_FIELDS = ("prompt_price", "completion_price")


@dataclass(frozen=True, slots=True)
class Usage:
    """The weekly figures of one model that simulated traffic reproduces."""

    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cached_tokens: int
    request_count: int
    imputed: bool  # True when derived from the headline total, not the model page

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ModelWeek:
    """One model in one weekly snapshot: upstream figures unchanged, plus ``usage``."""

    slug: str
    total_tokens: int
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cached_tokens: int
    request_count: int
    prompt_price: float  # USD per token
    completion_price: float  # USD per token
    is_free: bool
    usage: Usage

    @property
    def author(self) -> str:
        return self.slug.split("/", 1)[0]

    @property
    def has_detail(self) -> bool:
        """Whether the model page gave a per-request breakdown for this week."""
        return self.request_count > 0 and self.prompt_tokens + self.completion_tokens > 0


@dataclass(frozen=True, slots=True)
class Week:
    collected_on: date
    week_start: date  # first covered day (UTC)
    week_end: date  # last covered day, inclusive
    models: tuple[ModelWeek, ...]


@dataclass(frozen=True, slots=True)
class Market:
    source: str
    weeks: tuple[Week, ...]  # by collection day

    def select(self, first: str | None = None, last: str | None = None) -> tuple[Week, ...]:
        """Weeks whose collection day (ISO date) lies in [first, last]."""
        lo = date.fromisoformat(first) if first else date.min
        hi = date.fromisoformat(last) if last else date.max
        return tuple(w for w in self.weeks if lo <= w.collected_on <= hi)


# --------------------------------------------------------------------------- rebuild


def rebuild(shared_dir: Path, out: Path = DATA_PATH) -> int:
    """Derive the shipped JSON from ``shared_dir/data/openrouter-weekly-top10``.

    Returns the number of weeks written. Output is deterministic, so a rebuild
    from the same input reproduces the shipped file byte for byte.
    """
    weeks: list[dict[str, Any]] = []
    for path in sorted((shared_dir / UPSTREAM_DIR).glob("*.json")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        collected = date.fromisoformat(raw["date"])
        if collected.isoformat() != path.stem:
            raise ValueError(f"{path.name}: date {raw['date']} does not match the file name")
        weeks.append(
            {
                "collected_on": collected.isoformat(),
                "week_start": (collected - timedelta(days=COVERED_DAYS)).isoformat(),
                "week_end": (collected - timedelta(days=1)).isoformat(),
                "models": [_model_entry(m, path.name) for m in raw["models"]],
            }
        )
    _check_weeks(weeks)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_dumps({"source": SOURCE, "weeks": weeks}), encoding="utf-8")
    return len(weeks)


def _model_entry(m: dict[str, Any], where: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"slug": m["slug"]}
    for key in _INT_FIELDS:
        value = m[key]
        if type(value) is not int or value < 0:
            raise ValueError(f"{where} {m['slug']}: {key}={value!r} is not a count")
        entry[key] = value
    for key in _FLOAT_FIELDS:
        value = m[key]
        if type(value) not in (int, float) or value < 0:
            raise ValueError(f"{where} {m['slug']}: {key}={value!r} is not a price")
        entry[key] = value
    if type(m["is_free"]) is not bool:
        raise ValueError(f"{where} {m['slug']}: is_free={m['is_free']!r}")
    entry["is_free"] = m["is_free"]
    if entry["reasoning_tokens"] > entry["completion_tokens"]:
        raise ValueError(f"{where} {m['slug']}: reasoning exceeds completion")
    if entry["cached_tokens"] > entry["prompt_tokens"]:
        raise ValueError(f"{where} {m['slug']}: cached exceeds prompt")
    return entry


def _check_weeks(weeks: Sequence[dict[str, Any]]) -> None:
    # Simulated traffic is emitted week after week in event-time order, which
    # needs covered weeks that do not overlap.
    for prev, cur in itertools.pairwise(weeks):
        if cur["week_start"] <= prev["week_end"]:
            raise ValueError(f"weeks {prev['collected_on']} and {cur['collected_on']} overlap")
    for week in weeks:
        slugs = [m["slug"] for m in week["models"]]
        if len(set(slugs)) != len(slugs):
            raise ValueError(f"{week['collected_on']}: a slug appears twice")


def _dumps(doc: dict[str, Any]) -> str:
    """Pretty at the top, one line per model: readable and diff-friendly."""
    lines = ["{", f'  "source": {json.dumps(doc["source"])},', '  "weeks": [']
    for i, week in enumerate(doc["weeks"]):
        head = {k: week[k] for k in ("collected_on", "week_start", "week_end")}
        lines.append("    {" + json.dumps(head)[1:-1] + ', "models": [')
        models = week["models"]
        for j, model in enumerate(models):
            lines.append("      " + json.dumps(model) + ("," if j < len(models) - 1 else ""))
        lines.append("    ]}" + ("," if i < len(doc["weeks"]) - 1 else ""))
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- load


def load_market(path: Path = DATA_PATH) -> Market:
    """Read the shipped copy (cached: the result is immutable)."""
    return _load(path.resolve())


@lru_cache(maxsize=4)
def _load(path: Path) -> Market:
    doc = json.loads(path.read_text(encoding="utf-8"))
    raw_weeks: list[tuple[date, date, date, list[dict[str, Any]]]] = [
        (
            date.fromisoformat(w["collected_on"]),
            date.fromisoformat(w["week_start"]),
            date.fromisoformat(w["week_end"]),
            w["models"],
        )
        for w in doc["weeks"]
    ]
    usages = _usages([models for *_, models in raw_weeks])
    weeks = tuple(
        Week(
            collected_on=collected,
            week_start=start,
            week_end=end,
            models=tuple(
                ModelWeek(
                    slug=m["slug"],
                    total_tokens=m["total_tokens"],
                    prompt_tokens=m["prompt_tokens"],
                    completion_tokens=m["completion_tokens"],
                    reasoning_tokens=m["reasoning_tokens"],
                    cached_tokens=m["cached_tokens"],
                    request_count=m["request_count"],
                    prompt_price=float(m["prompt_price"]),
                    completion_price=float(m["completion_price"]),
                    is_free=m["is_free"],
                    usage=usage,
                )
                for m, usage in zip(models, week_usages, strict=True)
            ),
        )
        for (collected, start, end, models), week_usages in zip(raw_weeks, usages, strict=True)
    )
    return Market(source=doc["source"], weeks=weeks)


def _has_detail(m: dict[str, Any]) -> bool:
    return bool(m["request_count"] > 0 and m["prompt_tokens"] + m["completion_tokens"] > 0)


def _detail_consistent(models: Sequence[dict[str, Any]]) -> list[bool]:
    """Per row of one week: is the model-page detail usable as the weekly volume?

    Compared with the week's median detail/headline ratio rather than with 1,
    because in the first snapshot every model page covers a shorter window
    (ratio ~0.85) while the shares stay the same.
    """
    ratios = [
        (m["prompt_tokens"] + m["completion_tokens"]) / m["total_tokens"] if _has_detail(m) else 0.0
        for m in models
    ]
    known = [r for r, m in zip(ratios, models, strict=True) if _has_detail(m)]
    if not known:
        return [False] * len(models)
    typical = statistics.median(known)
    return [
        _has_detail(m) and abs(r / typical - 1.0) <= DETAIL_TOLERANCE
        for r, m in zip(ratios, models, strict=True)
    ]


@dataclass(frozen=True, slots=True)
class _Shape:
    prompt_share: Fraction  # prompt / (prompt + completion)
    reasoning_share: Fraction  # reasoning / completion
    cached_share: Fraction  # cached / prompt
    tokens_per_request: Fraction


def _shape(rows: Iterable[dict[str, Any]]) -> _Shape:
    p = c = r = k = n = 0
    for m in rows:
        p += m["prompt_tokens"]
        c += m["completion_tokens"]
        r += m["reasoning_tokens"]
        k += m["cached_tokens"]
        n += m["request_count"]
    return _Shape(
        prompt_share=Fraction(p, p + c),
        reasoning_share=Fraction(r, c) if c else Fraction(0),
        cached_share=Fraction(k, p) if p else Fraction(0),
        tokens_per_request=Fraction(p + c, n),
    )


def _usages(weeks: Sequence[Sequence[dict[str, Any]]]) -> list[list[Usage]]:
    """Usage per row; rows without a consistent detail are imputed.

    The volume of an imputed row is the headline ``total_tokens``; its split and
    tokens per request come from its own detail if it has any (it covers part
    of the week), else from the nearest week with detail of the same slug, then
    the same slug without ``:free``, then the same author, then any model.
    """
    detailed = [(i, m) for i, models in enumerate(weeks) for m in models if _has_detail(m)]
    result: list[list[Usage]] = []
    for i, models in enumerate(weeks):
        row: list[Usage] = []
        for m, ok in zip(models, _detail_consistent(models), strict=True):
            if ok:
                row.append(
                    Usage(
                        prompt_tokens=m["prompt_tokens"],
                        completion_tokens=m["completion_tokens"],
                        reasoning_tokens=m["reasoning_tokens"],
                        cached_tokens=m["cached_tokens"],
                        request_count=m["request_count"],
                        imputed=False,
                    )
                )
                continue
            shape = _shape([m]) if _has_detail(m) else _donor_shape(m, i, detailed)
            volume = m["total_tokens"]
            prompt = round(volume * shape.prompt_share)
            completion = volume - prompt
            row.append(
                Usage(
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    reasoning_tokens=min(completion, round(completion * shape.reasoning_share)),
                    cached_tokens=min(prompt, round(prompt * shape.cached_share)),
                    request_count=max(1, round(volume / shape.tokens_per_request)),
                    imputed=True,
                )
            )
        result.append(row)
    return result


def _donor_shape(
    m: dict[str, Any], week: int, detailed: Sequence[tuple[int, dict[str, Any]]]
) -> _Shape:
    slug: str = m["slug"]
    base = slug.removesuffix(":free")
    author = slug.split("/", 1)[0]
    tests = (
        lambda s: s == slug,
        lambda s: s.removesuffix(":free") == base,
        lambda s: s.split("/", 1)[0] == author,
        lambda s: True,
    )
    for matches in tests:
        found = [(abs(i - week), d) for i, d in detailed if matches(d["slug"])]
        if found:
            nearest = min(dist for dist, _ in found)
            return _shape(d for dist, d in found if dist == nearest)
    raise ValueError("no model in the market has a per-request breakdown")
