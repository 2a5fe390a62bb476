"""The reports' figures the simulated market reproduces, and how a replay measures them.

Report figures: OpenRouter and a16z, "State of AI: an empirical 100 trillion
token study" (Dec 2025), and press and analyst reports on the 2026 China/US
token-share crossover (Feb-Jul 2026). The simulator runs the reports' trends
over its 26 weeks: "first weeks" are the first four ISO weeks of a replay,
"last weeks" the last four, and the origin crossover keeps the real calendar.

``measure`` reads a stream of events (dicts as the simulator emits them) and
returns every fact with the replay's figure and whether it is within tolerance.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Final

from tokenshare.schema.catalog import Catalog

#: The week the real series (and the reports) put the first China > US week in.
CROSSOVER_WEEK: Final = "2026-W07"
FOUNDATIONAL_MODELS: Final = ("anthropic/claude-4.5-sonnet", "google/gemini-3-pro-preview")
BOOMERANG_AUTHOR: Final = "deepseek"
EDGE_WEEKS: Final = 4


@dataclass(frozen=True, slots=True)
class FactResult:
    fact: str
    report: str  # the reports' figure
    replay: str  # what the replay shows
    tolerance: str
    ok: bool


def iso_label(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


@dataclass(slots=True)
class _Week:
    tokens: float = 0.0
    by: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    spend: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    requests: int = 0
    prompt: int = 0
    completion: int = 0


@dataclass(slots=True)
class Replay:
    """Sums of a replay per ISO week, and what the retention facts need."""

    weeks: dict[str, _Week] = field(default_factory=lambda: defaultdict(_Week))
    total: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    slugs: set[str] = field(default_factory=set)
    authors: set[str] = field(default_factory=set)
    # (canonical model, user) -> months active ("2026-01")
    months: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    # (author, user) -> months active with any of the lab's models
    lab_months: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    _labels: dict[str, str] = field(default_factory=dict)  # UTC day -> ISO week label

    def add(self, event: Mapping[str, object], catalog: Catalog) -> None:
        slug = str(event["model"])
        info = catalog.lookup(slug)
        ts = str(event["ts"])
        day = ts[:10] if ts.endswith("Z") else datetime.fromisoformat(ts).date().isoformat()
        label = self._labels.get(day)
        if label is None:
            label = self._labels[day] = iso_label(date.fromisoformat(day))
        w = self.weeks[label]
        prompt = int(str(event["prompt_tokens"]))
        completion = int(str(event["completion_tokens"]))
        tokens = prompt + completion
        cost = float(str(event.get("cost_usd") or 0.0))
        category = str(event.get("category"))
        segment = (
            ("china_open" if info.origin_bloc == "China" else "other_open")
            if info.weights == "open"
            else "closed"
        )
        w.tokens += tokens
        w.requests += 1
        w.prompt += prompt
        w.completion += completion
        by = w.by
        by["bloc:" + info.origin_bloc] += tokens
        by["weights:" + info.weights] += tokens
        by["segment:" + segment] += tokens
        by["category:" + category] += tokens
        by[f"segcat:{segment}:{category}"] += tokens
        by["language:" + str(event.get("language"))] += tokens
        if info.weights == "open":
            by["opensize:" + info.size_class] += tokens
        if info.author == "meta-llama":
            by["llama"] += tokens
        if int(str(event.get("tool_calls") or 0)) > 0:
            by["tools"] += tokens
        if int(str(event.get("reasoning_tokens") or 0)) > 0:
            by["reasoning"] += tokens
        region = str(event.get("region"))
        w.spend["asia" if region.startswith("ap-") else region[:2]] += cost
        w.spend["all"] += cost
        kind = "prog" if category == "programming" else "other"
        self.total[kind + ":prompt"] += prompt
        self.total[kind + ":requests"] += 1
        self.slugs.add(slug)
        if info.author not in ("unidentified", "openrouter"):
            self.authors.add(info.author)
        user = event.get("user_id")
        if user is not None:
            self.months[(info.model, str(user))].add(day[:7])
            self.lab_months[(info.author, str(user))].add(day[:7])

    # --- measures -------------------------------------------------------------------

    def labels(self) -> list[str]:
        return sorted(self.weeks)

    def share(self, key: str, labels: Iterable[str], of: str | None = None) -> float:
        labels = list(labels)
        num = sum(self.weeks[x].by[key] for x in labels)
        den = sum(self.weeks[x].by[of] if of else self.weeks[x].tokens for x in labels)
        return num / den if den else 0.0

    def spend_share(self, region: str, labels: Iterable[str]) -> float:
        labels = list(labels)
        den = sum(self.weeks[x].spend["all"] for x in labels)
        return sum(self.weeks[x].spend[region] for x in labels) / den if den else 0.0

    def first(self) -> list[str]:
        return self.labels()[:EDGE_WEEKS]

    def last(self) -> list[str]:
        return self.labels()[-EDGE_WEEKS:]

    def weeks_of(self, year: int) -> list[str]:
        return [x for x in self.labels() if x.startswith(str(year))]

    def per_request(self, labels: Iterable[str], part: str) -> float:
        labels = list(labels)
        tokens = sum(getattr(self.weeks[x], part) for x in labels)
        return float(tokens) / sum(self.weeks[x].requests for x in labels)

    def first_week(self, above: Callable[[str], bool]) -> str | None:
        return next((x for x in self.labels() if above(x)), None)

    def china_leads(self, label: str) -> bool:
        by = self.weeks[label].by
        return by["bloc:China"] > by["bloc:US"]

    def retention(self, models: Iterable[str], cohort: str, month: str) -> float:
        """Share of the users who first used one of ``models`` in ``cohort`` (a
        month) who use it again in ``month``."""
        return self.cohorts_retention(models, [(cohort, month)])

    def cohorts_retention(self, models: Iterable[str], pairs: Iterable[tuple[str, str]]) -> float:
        """Like ``retention``, pooled over several (cohort, month) pairs."""
        wanted = dict(pairs)
        chosen = set(models)
        size = back = 0
        for (model, _), active in self.months.items():
            first = min(active)
            if model in chosen and first in wanted:
                size += 1
                back += wanted[first] in active
        return back / size if size else 0.0

    def author_retention(self, author: str, cohort: str, month: str) -> float:
        """Like ``retention``, for the users of any of a lab's models."""
        size = back = 0
        for (who, _), active in self.lab_months.items():
            if who == author and min(active) == cohort:
                size += 1
                back += month in active
        return back / size if size else 0.0


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _months(replay: Replay) -> list[str]:
    return sorted({m for active in replay.months.values() for m in active})


def measure(events: Iterable[Mapping[str, object]], catalog: Catalog | None = None) -> Replay:
    catalog = catalog or Catalog.load()
    replay = Replay()
    for event in events:
        replay.add(event, catalog)
    return replay


def facts(replay: Replay) -> list[FactResult]:
    """Every modelled fact with the replay's figure."""
    r = replay
    first, last, y2025 = r.first(), r.last(), r.weeks_of(2025)
    out: list[FactResult] = []

    def add(fact: str, report: str, replay_fig: str, tolerance: str, ok: bool) -> None:
        out.append(FactResult(fact, report, replay_fig, tolerance, ok))

    add("models with traffic", "300+", str(len(r.slugs)), ">= 300", len(r.slugs) >= 300)
    add("labs with traffic", "60+", str(len(r.authors)), ">= 60", len(r.authors) >= 60)
    cross = r.first_week(r.china_leads)
    add(
        "first week China > US",
        "9-15 Feb 2026",
        str(cross),
        CROSSOVER_WEEK,
        cross == CROSSOVER_WEEK,
    )
    leads = [r.china_leads(x) for x in r.labels()]
    changes = sum(a != b for a, b in itertools.pairwise(leads)) - 1
    add("lead changes after the crossover", "the lead changes hands again", str(changes),
        ">= 2", changes >= 2)  # fmt: skip
    cn_last, us_last = r.share("bloc:China", last), r.share("bloc:US", last)
    add("China-origin share, last weeks", "~46% (mid-2026)", _pct(cn_last), "±8 pp",
        abs(cn_last - 0.46) <= 0.08)  # fmt: skip
    add("US-origin share, last weeks", "~30% (mid-2026)", _pct(us_last), "±8 pp",
        abs(us_last - 0.30) <= 0.08)  # fmt: skip
    us_first = r.share("bloc:US", first)
    add("US-origin share, first weeks", "~70% (mid-2025)", _pct(us_first), "±8 pp",
        abs(us_first - 0.70) <= 0.08)  # fmt: skip
    open25 = r.share("weights:open", y2025)
    add("open-weight share, 2025 weeks", "~30% (closed ~70%)", _pct(open25), "±6 pp",
        abs(open25 - 0.30) <= 0.06)  # fmt: skip
    cn_open, other_open = r.share("segment:china_open", y2025), r.share("segment:other_open", y2025)
    add("China-origin open share, 2025 weeks", "13.0% (2025 average)", _pct(cn_open), "±4 pp",
        abs(cn_open - 0.13) <= 0.04)  # fmt: skip
    add("other open share, 2025 weeks", "13.7% (2025 average)", _pct(other_open), "±4 pp",
        abs(other_open - 0.137) <= 0.04)  # fmt: skip
    labels = r.labels()
    prog_tech = r.share("segcat:china_open:programming", labels, "segment:china_open") + r.share(
        "segcat:china_open:technology", labels, "segment:china_open"
    )
    rp = r.share("segcat:china_open:roleplay", labels, "segment:china_open")
    add("China-origin open: programming + technology", "39%", _pct(prog_tech), "±5 pp",
        abs(prog_tech - 0.39) <= 0.05)  # fmt: skip
    add("China-origin open: roleplay", "33%", _pct(rp), "±5 pp", abs(rp - 0.33) <= 0.05)
    open_rp = sum(
        r.weeks[x].by[f"segcat:{s}:roleplay"] for x in y2025 for s in ("china_open", "other_open")
    ) / max(1.0, sum(r.weeks[x].by["weights:open"] for x in y2025))
    add("roleplay share of open-model tokens, 2025 weeks", "over 50%", _pct(open_rp), "> 50%",
        open_rp > 0.5)  # fmt: skip
    prog_first, prog_last = (
        r.share("category:programming", first),
        r.share("category:programming", last),
    )
    add("programming share, first weeks", "~11% (2024)", _pct(prog_first), "±4 pp",
        abs(prog_first - 0.11) <= 0.04)  # fmt: skip
    add("programming share, last weeks", "over 50% (mid-2026)", _pct(prog_last), "> 50%",
        prog_last > 0.5)  # fmt: skip
    rs_first, rs_last = r.share("reasoning", first), r.share("reasoning", last)
    add("reasoning share of tokens, first weeks", "near 0 (start of 2025)", _pct(rs_first),
        "< 12%", rs_first < 0.12)  # fmt: skip
    add("reasoning share of tokens, last weeks", "over 50% (end of 2025)", _pct(rs_last), "> 50%",
        rs_last > 0.5)  # fmt: skip
    p_first, p_last = r.per_request(first, "prompt"), r.per_request(last, "prompt")
    add("prompt tokens per request, first weeks", "~1.5K", f"{p_first:,.0f}", "±25%",
        abs(p_first / 1500 - 1) <= 0.25)  # fmt: skip
    add("prompt tokens per request, last weeks", "over 6K (about 4x)", f"{p_last:,.0f}", "±25%",
        abs(p_last / 6000 - 1) <= 0.25)  # fmt: skip
    c_growth = r.per_request(last, "completion") / r.per_request(first, "completion")
    add("completion tokens per request, growth", "about doubled", f"x{c_growth:.2f}", "x1.6-x2.5",
        1.6 <= c_growth <= 2.5)  # fmt: skip
    prog_len = (r.total["prog:prompt"] / r.total["prog:requests"]) / (
        r.total["other:prompt"] / r.total["other:requests"]
    )
    add("programming prompts vs others", "3-4x longer", f"x{prog_len:.2f}", "x3-x4",
        3.0 <= prog_len <= 4.0)  # fmt: skip
    tools = [r.share("tools", [x]) for x in labels]
    tool_all = r.share("tools", labels)
    add("tokens in requests with tool calls", "stable near 15%",
        f"{_pct(tool_all)} (weeks {_pct(min(tools))}-{_pct(max(tools))})", "±3 pp, weeks ±6 pp",
        abs(tool_all - 0.15) <= 0.03 and all(abs(x - 0.15) <= 0.06 for x in tools))  # fmt: skip
    asia_first, asia_last = r.spend_share("asia", first), r.spend_share("asia", last)
    add("Asia share of spend, first weeks", "~13%", _pct(asia_first), "±3 pp",
        abs(asia_first - 0.13) <= 0.03)  # fmt: skip
    add("Asia share of spend, last weeks", "~31%", _pct(asia_last), "±3 pp",
        abs(asia_last - 0.31) <= 0.03)  # fmt: skip
    na_below = sum(r.spend_share("us", [x]) < 0.5 for x in labels) / len(labels)
    add("weeks with North America under 50% of spend", "most periods", _pct(na_below), ">= 75%",
        na_below >= 0.75)  # fmt: skip
    en, zh = r.share("language:en", labels), r.share("language:zh", labels)
    second = sorted(
        (k for k in r.weeks[labels[0]].by if k.startswith("language:") and k != "language:en"),
        key=lambda k: -r.share(k, labels),
    )[0]
    add("English share of tokens", "over 80%", _pct(en), "> 80%", en > 0.8)
    add("Chinese share of tokens (second language)", "~4.95%", _pct(zh), "±1.5 pp, second",
        abs(zh - 0.0495) <= 0.015 and second == "language:zh")  # fmt: skip
    llama = r.share("llama", last)
    add("Llama share, last weeks", "under 1%", _pct(llama), "< 1%", llama < 0.01)
    small = (
        r.share("opensize:small", first, "weights:open"),
        r.share("opensize:small", last, "weights:open"),
    )
    medium = (
        r.share("opensize:medium", first, "weights:open"),
        r.share("opensize:medium", last, "weights:open"),
    )
    add("small open models' share of open tokens", "declining",
        f"{_pct(small[0])} -> {_pct(small[1])}", "falls", small[1] < small[0])  # fmt: skip
    add("medium open models' share of open tokens", "the growth segment",
        f"{_pct(medium[0])} -> {_pct(medium[1])}", "rises by 5+ pp",
        medium[1] >= medium[0] + 0.05)  # fmt: skip
    months = _months(r)
    if len(months) >= 6:
        found = r.retention(FOUNDATIONAL_MODELS, months[0], months[5])
        later = r.cohorts_retention(
            FOUNDATIONAL_MODELS, [(months[1], months[4]), (months[2], months[5])]
        )
        add("foundational cohort kept at month 5", "~40%", _pct(found), "±10 pp",
            abs(found - 0.40) <= 0.10)  # fmt: skip
        add("later cohort of the same models, 3 months on", "far below the foundational",
            _pct(later), f"under {_pct(found - 0.10)}", later < found - 0.10)  # fmt: skip
        curve = [r.author_retention(BOOMERANG_AUTHOR, months[0], m) for m in months[1:6]]
        dip = min(curve[:3])
        rebound = max(curve[curve.index(dip) + 1 :], default=0.0)
        add("boomerang: DeepSeek first cohort, months 1-5", "some cohorts come back",
            " ".join(_pct(x) for x in curve), "rises 3+ pp after a dip",
            rebound >= dip + 0.03)  # fmt: skip
    return out


def table(results: Iterable[FactResult]) -> str:
    """The results as a Markdown table (``fact | report figure | replay figure | tolerance``)."""
    lines = ["| fact | report figure | replay figure | tolerance |", "|---|---|---|---|"]
    lines += [f"| {x.fact} | {x.report} | {x.replay} | {x.tolerance} |" for x in results]
    return "\n".join(lines)
