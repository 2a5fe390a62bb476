"""The README's ten example queries, run on simulated traffic and checked
against a computation in Python from the events themselves."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from tests.paths import README
from tokenshare.producers.simulator import SimConfig, simulate
from tokenshare.schema.catalog import Catalog
from tokenshare.schema.wire import encode
from tokenshare.sinks.clickhouse import migrate
from tokenshare.sinks.raw_events import RawEventWriter
from tokenshare.streams.batch import Enricher, SourceMessage

EXAMPLE = re.compile(r"```sql\n-- example (\d+): [^\n]*\n(.*?)```", re.S)

Event = dict[str, Any]


def examples() -> dict[int, str]:
    found = {int(n): sql for n, sql in EXAMPLE.findall(README.read_text())}
    assert sorted(found) == list(range(1, 11)), "the README must hold examples 1 to 10"
    return found


@pytest.fixture(scope="module")
def events() -> list[Event]:
    return list(simulate(SimConfig(events=20_000, seed=11)))


@pytest.fixture(scope="module")
def market(ch_client: Client, events: list[Event]) -> Iterator[str]:
    database = "examples_db"
    ch_client.command(f"DROP DATABASE IF EXISTS {database}")
    migrate(ch_client, database)
    messages = [
        SourceMessage("events", 0, offset, encode(events[start : start + 500]))
        for offset, start in enumerate(range(0, len(events), 500))
    ]
    rows = Enricher(Catalog.load(), 1 << 22).process(messages).rows
    RawEventWriter(ch_client, database).write(rows)
    yield database
    ch_client.command(f"DROP DATABASE IF EXISTS {database}")


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
    raise AssertionError(n)


@pytest.mark.parametrize("n", range(1, 11))
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
                assert float(a) == pytest.approx(b, abs=1.01e-4 if n != 6 else 0.51), (n, g, w)
            else:
                assert a == b, (n, g, w)
