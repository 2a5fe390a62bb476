"""The README's example queries, run on simulated traffic and checked against a
computation in Python from the events themselves."""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from tests.paths import README
from tests.unit.analysts.conftest import CONTINENT_OF
from tests.unit.analysts.test_study_views import expected_monthly
from tokenshare.schema.catalog import Catalog

EXAMPLE = re.compile(r"```sql\n-- example (\d+): [^\n]*\n(.*?)```", re.S)
EXAMPLES = 24
#: Examples whose floats are rounded to whole numbers (the others to 4 decimals).
WHOLE = {6, 12, 13}

Event = dict[str, Any]


def examples() -> dict[int, str]:
    found = {int(n): sql for n, sql in EXAMPLE.findall(README.read_text())}
    assert sorted(found) == list(range(1, EXAMPLES + 1)), f"the README holds examples 1-{EXAMPLES}"
    return found


@pytest.fixture
def events(simulated_events: list[Event]) -> list[Event]:
    return simulated_events


@pytest.fixture
def market(simulated_market: str) -> str:
    return simulated_market


# --- the independent side: plain Python over the events -------------------------------

CATALOG = Catalog.load()


def week_of(e: Event) -> date:
    day = datetime.fromisoformat(str(e["ts"]).replace("Z", "+00:00")).date()
    return day - timedelta(days=day.weekday())


def tokens(e: Event) -> int:
    return int(e["prompt_tokens"]) + int(e["completion_tokens"])


def by_week(events: list[Event], key: Callable[[Event], str]) -> dict[date, dict[str, float]]:
    out: dict[date, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for e in events:
        out[week_of(e)][key(e)] += tokens(e)
    return out


def share_series(events: list[Event], key: Callable[[Event], str], value: str) -> list[tuple]:
    weeks = by_week(events, key)
    return [
        (w, round(v.get(value, 0) / sum(v.values()), 4))
        for w, v in sorted(weeks.items())
        if value in v
    ]


def bloc(e: Event) -> str:
    return CATALOG.lookup(str(e["model"])).origin_bloc


def expected(n: int, events: list[Event]) -> list[tuple]:
    info = lambda e: CATALOG.lookup(str(e["model"]))  # noqa: E731
    if n == 1:
        weeks = by_week(events, bloc)
        return [
            (w, b, round(v[b] / sum(v.values()), 4))
            for w, v in sorted(weeks.items())
            for b in ("China", "US")
            if b in v
        ]
    if n == 2:
        weeks = by_week(events, bloc)
        return [(min(w for w, v in weeks.items() if v.get("China", 0) > v.get("US", 0)),)]
    if n == 3:
        per_model: dict[str, int] = defaultdict(int)
        for e in events:
            per_model[info(e).model] += tokens(e)
        return sorted(per_model.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    if n == 4:
        return share_series(events, lambda e: info(e).weights, "open")
    if n == 5:
        rows = []
        for w, v in sorted(by_week(events, lambda e: info(e).model).items()):
            total = sum(v.values())
            shares = {m: t / total for m, t in v.items()}
            top = max(shares, key=lambda m: shares[m])
            rows.append(
                (
                    w,
                    top,
                    round(shares[top], 4),
                    round(sum(s * s for s in shares.values()), 4),
                    sum(1 for s in shares.values() if s > 0.01),
                )
            )
        return rows
    if n == 6:
        acc: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0])
        for e in events:
            if e.get("category") == "programming":
                a = acc[week_of(e)]
                a[0] += int(e["prompt_tokens"])
                a[1] += int(e["completion_tokens"])
                a[2] += 1
        return [(w, a[0] / a[2], a[1] / a[2]) for w, a in sorted(acc.items())]
    if n == 7:
        tok: dict[str, float] = defaultdict(float)
        spend: dict[str, float] = defaultdict(float)
        for e in events:
            tok[info(e).author] += tokens(e)
            spend[info(e).author] += float(e.get("cost_usd", 0.0))
        t_all, s_all = sum(tok.values()), sum(spend.values())
        rows = [(a, round(tok[a] / t_all, 4), round(spend[a] / s_all, 4)) for a in tok]
        return sorted(rows, key=lambda r: (-r[1], r[0]))
    if n == 8:
        return share_series(events, lambda e: info(e).reasoning, "reasoning")
    if n == 9:
        model = "deepseek/deepseek-v3.2"
        active: dict[str, set[date]] = defaultdict(set)
        for e in events:
            if e.get("app_id") and info(e).model == model:
                active[str(e["app_id"])].add(week_of(e))
        cohort = min(min(ws) for ws in active.values())
        members = [a for a, ws in active.items() if min(ws) == cohort]
        last = max(w for ws in active.values() for w in ws)
        rows = []
        for k in range((last - cohort).days // 7 + 1):
            n_active = sum(1 for a in members if cohort + timedelta(weeks=k) in active[a])
            if n_active:
                rows.append((k, n_active, len(members), round(n_active / len(members), 4)))
        return rows
    if n == 10:
        return share_series(events, bloc, "unidentified")
    return study_expected(n, events)


def day_of(e: Event) -> date:
    return datetime.fromisoformat(str(e["ts"]).replace("Z", "+00:00")).date()


def month_of(e: Event) -> date:
    return day_of(e).replace(day=1)


def sums(group: list[Event], field: str) -> int:
    return sum(int(e.get(field, 0)) for e in group)


def spend(group: list[Event]) -> float:
    return sum(float(e.get("cost_usd", 0.0)) for e in group)


def groups(events: list[Event], key: Callable[[Event], Any]) -> dict[Any, list[Event]]:
    out: dict[Any, list[Event]] = defaultdict(list)
    for e in events:
        out[key(e)].append(e)
    return out


def study_expected(n: int, events: list[Event]) -> list[tuple]:
    """Examples 11 on: the study's views."""
    info = lambda e: CATALOG.lookup(str(e["model"]))  # noqa: E731
    weeks = groups(events, week_of)
    if n == 11:
        open_weeks = by_week([e for e in events if info(e).weights == "open"], bloc)
        return [
            (w, b, round(t / sum(v.values()), 4))
            for w, v in sorted(open_weeks.items())
            for b, t in sorted(v.items())
        ]
    if n == 12:
        return [
            (w, *(sums(g, f) / len(g) for f in ("prompt_tokens", "completion_tokens",
                                                "reasoning_tokens")))
            for w, g in sorted(weeks.items())
        ]  # fmt: skip
    if n == 13:
        cats = groups(events, lambda e: str(e.get("category") or "unidentified"))
        return [(c, sums(g, "prompt_tokens") / len(g)) for c, g in sorted(cats.items())]
    if n == 14:
        latest = groups(weeks[max(weeks)], lambda e: info(e).model)
        return [
            (m, sums(g, "reasoning_tokens") / sums(g, "completion_tokens")
             if sums(g, "completion_tokens") else 0.0)
            for m, g in sorted(latest.items())
        ]  # fmt: skip
    if n == 15:
        return [
            (w, sum(tokens(e) for e in g if int(e.get("tool_calls", 0))) / sum(map(tokens, g)),
             sums(g, "cached_tokens") / sums(g, "prompt_tokens"))
            for w, g in sorted(weeks.items())
        ]  # fmt: skip
    if n == 16:
        labs = groups(events, lambda e: info(e).author)
        t_all, s_all = sum(map(tokens, events)), spend(events)
        rows = [
            (a, sum(map(tokens, g)), spend(g) / sum(map(tokens, g)) * 1e6,
             (spend(g) / s_all) / (sum(map(tokens, g)) / t_all))
            for a, g in labs.items()
        ]  # fmt: skip
        return [(a, p, r) for a, _, p, r in sorted(rows, key=lambda r: (-r[1], r[0]))]
    if n in (17, 18):
        key, step = (week_of, 7) if n == 17 else (month_of, 0)
        periods = groups(events, key)
        rows = []
        for p, g in sorted(periods.items()):
            before = p - timedelta(days=step) if step else (p - timedelta(days=1)).replace(day=1)
            t = sum(map(tokens, g))
            change = t / sum(map(tokens, periods[before])) - 1 if before in periods else None
            rows.append((p, len({day_of(e) for e in g}), t, change))
        return rows
    if n == 19:
        spend_weeks: dict[date, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for e in events:
            spend_weeks[week_of(e)][CONTINENT_OF[str(e["region"])]] += float(e["cost_usd"])
        return [
            (w, v["Asia"] / sum(v.values())) for w, v in sorted(spend_weeks.items()) if "Asia" in v
        ]
    if n == 20:
        langs = {k: sum(map(tokens, g)) for k, g in groups(events, lambda e: str(
            e.get("language") or "unidentified")).items()}  # fmt: skip
        total = sum(langs.values())
        return [(k, t / total) for k, t in sorted(langs.items(), key=lambda kv: (-kv[1], kv[0]))]
    if n == 21:
        cells = expected_monthly(events, "deepseek/deepseek-v3.2", "app_id")
        first = min(c for c, _ in cells)
        return [
            (after, active, back, size, share)
            for (c, after), (size, active, back, share) in sorted(cells.items())
            if c == first
        ]
    if n == 22:
        used: dict[str, set[str]] = defaultdict(set)
        for e in events:
            if e.get("user_id"):
                used[str(e["user_id"])].add(info(e).model)
        counts: dict[int, int] = defaultdict(int)
        for models in used.values():
            counts[len(models)] += 1
        return sorted(counts.items())
    if n in (23, 24):
        cats = groups(events, lambda e: str(e.get("category") or "unidentified"))
        tok = {c: sum(map(tokens, g)) for c, g in cats.items()}
        price = {c: spend(g) / tok[c] * 1e6 for c, g in cats.items()}
        if n == 23:
            mid_p, mid_t = statistics.median(price.values()), statistics.median(tok.values())
            return [
                (c, f"{'high' if price[c] > mid_p else 'low'} cost, "
                    f"{'high' if tok[c] > mid_t else 'low'} volume", price[c], tok[c])
                for c in sorted(cats)
            ]  # fmt: skip
        xs = [math.log(price[c]) for c in cats if price[c] > 0]
        ys = [math.log(tok[c]) for c in cats if price[c] > 0]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
            (x - mx) ** 2 for x in xs
        )
        return [(len(xs), slope)]
    raise AssertionError(n)


@pytest.mark.parametrize("n", range(1, EXAMPLES + 1))
def test_readme_example(n: int, ch_client: Client, market: str, events: list[Event]) -> None:
    sql = examples()[n].replace("tokenshare.", f"{market}.")
    got = [tuple(r) for r in ch_client.query(sql).result_rows]
    want = expected(n, events)
    assert got, f"example {n} returned nothing"
    assert len(got) == len(want), (n, got[:3], want[:3])
    for g, w in zip(got, want, strict=True):
        for a, b in zip(g, w, strict=True):
            if isinstance(b, float):
                # ClickHouse rounds halves its own way: one unit of the last digit.
                assert float(a) == pytest.approx(b, abs=0.51 if n in WHOLE else 1.01e-4), (n, g, w)
            else:
                assert a == b, (n, g, w)
