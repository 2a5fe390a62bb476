"""Users and apps of the simulated market: who sends each request.

A user lives in one region, speaks one language, belongs to one app and uses a
few models. For every model and region, the population keeps enough users of
that model active to carry the week's requests (about ``EVENTS_PER_HOLDER``
each); when too few are left, new ones join: half of them existing users of
the region taking up one more model, half newcomers. A user keeps a model for
a random number of weeks (weekly survival ``SURVIVAL``), then churns.

The retention stories of the reports (OpenRouter and a16z, "State of AI", Dec
2025) are built in: the first-month users of the foundational models keep ~40%
of them at month 5 (survival ``FOUNDATIONAL_SURVIVAL``), later cohorts of the
same models churn like everyone else, and some users who leave the boomerang
lab's models come back a few weeks later.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

Int64s = NDArray[np.int64]

EVENTS_PER_HOLDER: Final = 4.0
#: Weekly probability that a user keeps using a model.
SURVIVAL: Final = 0.83
FOUNDATIONAL_SURVIVAL: Final = 0.978
#: Canonical models whose first-month cohort is foundational, and its length in weeks.
FOUNDATIONAL: Final = frozenset({"anthropic/claude-4.5-sonnet", "google/gemini-3-pro-preview"})
FOUNDATIONAL_WEEKS: Final = 3  # the weeks of November 2025: the first monthly cohort
#: The lab some of whose churned users come back, how many, and after how long.
BOOMERANG_AUTHOR: Final = "deepseek"
BOOMERANG_SURVIVAL: Final = 0.78
BOOMERANG_RETURN: Final = 0.8
BOOMERANG_AFTER: Final = (7, 10)
#: Probability that a new user of a model is an existing user of its region.
REUSE: Final = 0.5
MAX_MODELS_PER_USER: Final = 4
APPS: Final = 400
#: Apps a model is offered in (weights of its first, second, third app).
APP_SLATE: Final = (0.6, 0.3, 0.1)

REGIONS: Final = (
    "us-east",
    "us-west",
    "eu-west",
    "eu-central",
    "ap-southeast",
    "ap-east",
    "sa-east",
)
LANGUAGES: Final = ("en", "zh", "es", "ja", "de", "fr", "pt", "ko", "ru")
#: Language of a region's users (rows: REGIONS, columns: LANGUAGES).
_LANGUAGE_BY_REGION: Final = np.array(
    [
        [0.96, 0.01, 0.03, 0, 0, 0, 0, 0, 0],
        [0.94, 0.02, 0.04, 0, 0, 0, 0, 0, 0],
        [0.82, 0.00, 0.05, 0, 0.04, 0.07, 0.02, 0, 0],
        [0.74, 0.00, 0.00, 0, 0.16, 0.04, 0, 0, 0.06],
        [0.86, 0.09, 0.00, 0.02, 0, 0, 0, 0.03, 0],
        [0.53, 0.28, 0.00, 0.12, 0, 0, 0, 0.07, 0],
        [0.55, 0.00, 0.12, 0, 0, 0, 0.33, 0, 0],
    ]
)
_LANGUAGE_CDF: Final = [list(np.cumsum(row / row.sum())) for row in _LANGUAGE_BY_REGION]
_SLATE_CDF: Final = list(np.cumsum(APP_SLATE))


@dataclass(slots=True)
class _Holders:
    """Users of one (model, region): when each started, churned, came back."""

    user: list[int] = field(default_factory=list)
    start: list[int] = field(default_factory=list)
    end: list[int] = field(default_factory=list)  # exclusive
    back: list[int] = field(default_factory=list)  # return week, or -1
    back_end: list[int] = field(default_factory=list)

    def active(self, week: int) -> list[int]:
        return [
            u
            for u, s, e, b, be in zip(
                self.user, self.start, self.end, self.back, self.back_end, strict=True
            )
            if s <= week < e or b <= week < be
        ]


def _app_slate(slug: str) -> tuple[int, ...]:
    digest = hashlib.blake2b(slug.encode(), digest_size=12).digest()
    return tuple(int.from_bytes(digest[4 * i : 4 * i + 4], "big") % APPS for i in range(3))


class Population:
    """Users created on demand, week by week, from one random stream."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.region: list[int] = []
        self.language: list[int] = []
        self.app: list[int] = []
        self._models: list[set[str]] = []
        self._holders: dict[tuple[str, int], _Holders] = {}
        # Churned users of the boomerang lab due back: (user, from, until, slug or "").
        self._returners: dict[int, list[list[Any]]] = {}
        # Users of a region who may still take up a model (reuse candidates).
        self._open: list[list[int]] = [[] for _ in REGIONS]

    def __len__(self) -> int:
        return len(self.region)

    def _new_user(self, region: int, slug: str) -> int:
        uid = len(self.region)
        self.region.append(region)
        language, app = self.rng.random(2).tolist()
        self.language.append(
            min(bisect.bisect(_LANGUAGE_CDF[region], language), len(LANGUAGES) - 1)
        )
        self.app.append(_app_slate(slug)[min(bisect.bisect(_SLATE_CDF, app), 2)])
        self._models.append(set())
        self._open[region].append(uid)
        return uid

    def _recruit(self, region: int, slug: str) -> int:
        pool = self._open[region]
        if pool and self.rng.random() < REUSE:
            for _ in range(4):
                i = int(self.rng.integers(0, len(pool)))
                uid = pool[i]
                models = self._models[uid]
                if slug not in models and len(models) < MAX_MODELS_PER_USER:
                    return uid
        return self._new_user(region, slug)

    def _returning(self, week: int, slug: str, region: int, active: set[int]) -> list[int]:
        """Users of the boomerang lab back this week, each on one of its models."""
        out = []
        for entry in self._returners.get(region, ()):
            uid, back, back_end, on = entry
            if not back <= week < back_end or uid in active:
                continue
            if not on:
                models = self._models[uid]
                if slug not in models and len(models) >= MAX_MODELS_PER_USER:
                    continue
                models.add(slug)
                entry[3] = on = slug
            if on == slug:
                out.append(uid)
        return out

    def _lifetime(self, canonical: str, author: str, week: int) -> tuple[int, int, int]:
        survival = SURVIVAL
        if canonical in FOUNDATIONAL and week < FOUNDATIONAL_WEEKS:
            survival = FOUNDATIONAL_SURVIVAL
        elif author == BOOMERANG_AUTHOR:
            survival = BOOMERANG_SURVIVAL
        end = week + int(self.rng.geometric(1.0 - survival))
        back = back_end = -1
        if author == BOOMERANG_AUTHOR and self.rng.random() < BOOMERANG_RETURN:
            back = end + int(self.rng.integers(BOOMERANG_AFTER[0], BOOMERANG_AFTER[1] + 1))
            back_end = back + int(self.rng.geometric(1.0 - FOUNDATIONAL_SURVIVAL))
        return end, back, back_end

    def users_for(
        self, week: int, slug: str, canonical: str, author: str, region: int, events: int
    ) -> Int64s:
        """Active users of (slug, region) this week, topped up to carry ``events``."""
        holders = self._holders.setdefault((slug, region), _Holders())
        active = holders.active(week)
        if author == BOOMERANG_AUTHOR:
            active += self._returning(week, slug, region, set(active))
        needed = max(1, math.ceil(events / EVENTS_PER_HOLDER))
        for _ in range(needed - len(active)):
            uid = self._recruit(region, slug)
            models = self._models[uid]
            models.add(slug)
            if len(models) >= MAX_MODELS_PER_USER and uid in self._open[region]:
                self._open[region].remove(uid)
            end, back, back_end = self._lifetime(canonical, author, week)
            holders.user.append(uid)
            holders.start.append(week)
            holders.end.append(end)
            holders.back.append(-1)
            holders.back_end.append(-1)
            if back >= 0:  # they come back to the lab, to whichever of its models they meet
                self._returners.setdefault(region, []).append([uid, back, back_end, ""])
            active.append(uid)
        return np.asarray(active, dtype=np.int64)
