"""The study's views (migration 010) and their queries, on simulated traffic and on
crafted events: every figure is checked against a computation in plain Python from
the events themselves."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from tests.factories import event, unique
from tests.unit.analysts.conftest import CONTINENT_OF, store_events
from tokenshare.analysts import queries, study
from tokenshare.schema.catalog import Catalog

Event = dict[str, Any]
CATALOG = Catalog.load()


@pytest.fixture
def events(simulated_events: list[Event]) -> list[Event]:
    return simulated_events


@pytest.fixture
def market(simulated_market: str) -> str:
    return simulated_market


@pytest.fixture
def query(ch_client: Client) -> queries.Query:
    return lambda sql, params: ch_client.query(sql, parameters=params).result_rows


# --- the independent side ------------------------------------------------------------


def day_of(e: Event) -> date:
    return datetime.fromisoformat(str(e["ts"]).replace("Z", "+00:00")).astimezone(UTC).date()


def week_of(e: Event) -> date:
    day = day_of(e)
    return day - timedelta(days=day.weekday())


def month_of(e: Event) -> date:
    return day_of(e).replace(day=1)


def tokens(e: Event) -> int:
    return int(e["prompt_tokens"]) + int(e["completion_tokens"])


def label(e: Event, name: str) -> str:
    value = e.get(name)
    return "unidentified" if value is None else str(value)


def dim(name: str) -> Callable[[Event], str]:
    """The value of a dimension for an event, from the catalog or the event."""
    if name in ("category", "region", "language", "provider"):
        return lambda e: label(e, name)
    if name == "model":
        return lambda e: CATALOG.lookup(str(e["model"])).model
    return lambda e: str(getattr(CATALOG.lookup(str(e["model"])), name))


def unplaced(e: Event) -> bool:
    return CATALOG.lookup(str(e["model"])).origin_bloc == "unidentified"


def shares_by_week(
    events: list[Event], key: Callable[[Event], str], amount: Callable[[Event], float] = tokens
) -> dict[tuple[date, str], float]:
    sums: dict[date, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for e in events:
        sums[week_of(e)][key(e)] += amount(e)
    return {
        (w, v): (x / sum(vs.values()) if sum(vs.values()) else 0.0)
        for w, vs in sums.items()
        for v, x in vs.items()
    }


def last_weeks(events: list[Event], n: int) -> set[date]:
    return set(sorted({week_of(e) for e in events})[-n:])


def assert_close(got: dict[Any, Any], want: dict[Any, Any], what: object = "") -> None:
    """Same keys; numbers equal up to float rounding, element by element."""
    assert set(got) == set(want), (what, set(got) ^ set(want))
    for key, value in want.items():
        pair = (got[key], value)
        if isinstance(value, tuple):
            assert tuple(got[key]) == pytest.approx(value, rel=1e-9, abs=1e-12), (what, key, pair)
        else:
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (what, key, pair)


# --- segments and the unidentified bucket ------------------------------------------


def test_segment_shares_equal_the_events(
    market: str, query: queries.Query, events: list[Event]
) -> None:
    open_models = [e for e in events if dim("weights")(e) == "open"]
    want = shares_by_week(open_models, dim("origin_bloc"))
    points = queries.weekly_shares(
        query, market, "origin_bloc", weeks=None, where={"weights": "open"}
    )
    assert_close({(p.period, p.value): p.share for p in points}, want)
    assert {p.value for p in points} >= {"China", "US"}
    # Two filters, spend, the last 4 weeks.
    programming = [e for e in open_models if label(e, "category") == "programming"]
    recent = last_weeks(events, 4)
    spend = {
        k: s
        for k, s in shares_by_week(
            programming, dim("origin_bloc"), lambda e: float(e.get("cost_usd", 0.0))
        ).items()
        if k[0] in recent
    }
    points = queries.weekly_shares(
        query, market, "origin_bloc", weeks=4, measure="spend_usd",
        where={"weights": "open", "category": "programming"},
    )  # fmt: skip
    assert_close({(p.period, p.value): p.share for p in points}, spend)


def test_exclude_unidentified_leaves_out_stealth_authors_and_models(
    market: str, query: queries.Query, events: list[Event]
) -> None:
    assert any(unplaced(e) and "/" in str(e["model"]) for e in events), "stealth traffic"
    placed = [e for e in events if not unplaced(e)]
    for name in ("author", "model"):
        want = shares_by_week(placed, dim(name))
        points = queries.weekly_shares(query, market, name, weeks=None, exclude_unidentified=True)
        got = {(p.period, p.value): p.share for p in points}
        assert_close(got, want, name)
        assert not any(v.startswith("openrouter") for _, v in got), name
        # Within a segment, the same rule.
        segment = queries.weekly_shares(
            query, market, name, weeks=None, exclude_unidentified=True,
            where={"category": "programming"},
        )  # fmt: skip
        want_segment = shares_by_week(
            [e for e in placed if label(e, "category") == "programming"], dim(name)
        )
        assert_close({(p.period, p.value): p.share for p in segment}, want_segment)
    top = queries.top_values(query, market, "author", weeks=520, exclude_unidentified=True)
    assert "openrouter" not in {t.value for t in top}
    assert sum(t.total for t in top if t.value) <= sum(tokens(e) for e in placed)


# --- per request, tools and caches -------------------------------------------------


def figures(group: list[Event]) -> tuple[float, ...]:
    n = len(group)
    prompt = sum(int(e["prompt_tokens"]) for e in group)
    completion = sum(int(e["completion_tokens"]) for e in group)
    reasoning = sum(int(e.get("reasoning_tokens", 0)) for e in group)
    cached = sum(int(e.get("cached_tokens", 0)) for e in group)
    spend = sum(float(e.get("cost_usd", 0.0)) for e in group)
    total = prompt + completion
    return (
        n, prompt / n, completion / n, reasoning / n,
        reasoning / completion if completion else 0.0,
        cached / prompt if prompt else 0.0,
        spend / total * 1e6 if total else 0.0,
    )  # fmt: skip


def grouped(events: list[Event], key: Callable[[Event], str]) -> dict[tuple[date, str], list]:
    out: dict[tuple[date, str], list[Event]] = defaultdict(list)
    for e in events:
        out[(week_of(e), key(e))].append(e)
    return out


def test_per_request_figures_equal_the_events(
    market: str, query: queries.Query, events: list[Event]
) -> None:
    overall = {k: figures(g) for k, g in grouped(events, lambda e: study.ALL).items()}
    got = study.per_request(query, market, weeks=None)
    assert_close({(r.week, r.value): tuple(r[2:]) for r in got}, overall)
    for name in ("category", "model"):
        want = {k: figures(g) for k, g in grouped(events, dim(name)).items()}
        rows = study.per_request(query, market, name, weeks=None, top=None)
        assert_close({(r.week, r.value): tuple(r[2:]) for r in rows}, want, name)
    # The top 3 models by tokens over the last 2 weeks, in those weeks only.
    recent = last_weeks(events, 2)
    totals: dict[str, int] = defaultdict(int)
    for e in events:
        if week_of(e) in recent:
            totals[dim("model")(e)] += tokens(e)
    top3 = sorted(totals, key=lambda m: (-totals[m], m))[:3]
    rows = study.per_request(query, market, "model", weeks=2, top=3)
    assert {r.value for r in rows} == set(top3)
    assert {r.week for r in rows} == recent


def tool_figures(group: list[Event]) -> tuple[float, ...]:
    used = [e for e in group if int(e.get("tool_calls", 0)) > 0]
    prompt = sum(int(e["prompt_tokens"]) for e in group)
    cached = sum(int(e.get("cached_tokens", 0)) for e in group)
    total = sum(tokens(e) for e in group)
    return (
        len(group), total, sum(tokens(e) for e in used) / total, len(used) / len(group),
        cached / prompt if prompt else 0.0,
        sum(1 for e in group if int(e.get("cached_tokens", 0)) > 0) / len(group),
    )  # fmt: skip


def test_tool_and_cache_shares_equal_the_events(
    market: str, query: queries.Query, events: list[Event]
) -> None:
    assert any(int(e.get("tool_calls", 0)) for e in events)
    overall = {k: tool_figures(g) for k, g in grouped(events, lambda e: study.ALL).items()}
    got = study.tool_use(query, market, weeks=None)
    assert_close({(r.week, r.value): tuple(r[2:]) for r in got}, overall)
    want = {k: tool_figures(g) for k, g in grouped(events, dim("model")).items()}
    rows = study.tool_use(query, market, "model", weeks=None, top=None)
    assert_close({(r.week, r.value): tuple(r[2:]) for r in rows}, want)


# --- prices ------------------------------------------------------------------------


def test_prices_quadrants_and_elasticity_equal_the_events(
    market: str, query: queries.Query, events: list[Event]
) -> None:
    for name in ("category", "author"):
        tok: dict[str, int] = defaultdict(int)
        spend: dict[str, float] = defaultdict(float)
        for e in events:
            tok[dim(name)(e)] += tokens(e)
            spend[dim(name)(e)] += float(e.get("cost_usd", 0.0))
        price = {v: spend[v] / tok[v] * 1e6 for v in tok}
        mid_price, mid_tokens = statistics.median(price.values()), statistics.median(tok.values())
        t_all, s_all = sum(tok.values()), sum(spend.values())
        rows = {p.value: p for p in study.prices(query, market, name)}
        assert set(rows) == set(tok)
        for v, p in rows.items():
            assert p.tokens == tok[v]
            assert (p.spend_usd, p.usd_per_mtok) == pytest.approx((spend[v], price[v]))
            assert (p.token_share, p.spend_share) == pytest.approx(
                (tok[v] / t_all, spend[v] / s_all)
            )
            assert p.spend_to_token_ratio == pytest.approx((spend[v] / s_all) / (tok[v] / t_all))
            cost = "high" if price[v] > mid_price else "low"
            size = "high" if tok[v] > mid_tokens else "low"
            assert p.quadrant == f"{cost} cost, {size} volume", v
        # Least squares of log(tokens) on log(price), over the priced values.
        xs = [math.log(price[v]) for v in tok if price[v] > 0]
        ys = [math.log(tok[v]) for v in tok if price[v] > 0]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
        sxx = sum((x - mx) ** 2 for x in xs)
        syy = sum((y - my) ** 2 for y in ys)
        fit = study.elasticity(query, market, name)
        assert fit is not None and fit.points == len(xs)
        assert fit.elasticity == pytest.approx(sxy / sxx, rel=1e-6, abs=1e-9)
        assert fit.intercept == pytest.approx(my - sxy / sxx * mx, rel=1e-6)
        assert fit.r_squared == pytest.approx(sxy * sxy / (sxx * syy), rel=1e-6, abs=1e-12)
    assert len({p.quadrant for p in study.prices(query, market, "category")}) >= 2


# --- volume, growth, months --------------------------------------------------------


def test_weekly_and_monthly_volume_and_growth_equal_the_events(
    market: str, query: queries.Query, events: list[Event]
) -> None:
    for months, period in ((False, week_of), (True, month_of)):
        sums: dict[date, list[Any]] = defaultdict(lambda: [set(), 0, 0, 0.0])
        for e in events:
            acc = sums[period(e)]
            acc[0].add(day_of(e))
            acc[1] += 1
            acc[2] += tokens(e)
            acc[3] += float(e.get("cost_usd", 0.0))
        got = study.volume(query, market, months=months)
        assert [p.period for p in got] == sorted(sums)
        for i, p in enumerate(got):
            days, n, t, s = sums[p.period]
            assert (p.days, p.requests, p.tokens) == (len(days), n, t)
            assert p.spend_usd == pytest.approx(s)
            before = got[i - 1].period if i else None
            step = (
                (p.period.replace(day=1) - timedelta(days=1)).replace(day=1)
                if months
                else (p.period - timedelta(days=7))
            )
            if before == step:
                assert p.change == pytest.approx(t / sums[before][2] - 1)
            else:
                assert p.change is None
    by_model = study.growth(query, market, "model", weeks=None, top=None)
    weekly: dict[tuple[date, str], int] = defaultdict(int)
    for e in events:
        weekly[(week_of(e), dim("model")(e))] += tokens(e)
    assert {(g.week, g.value): g.tokens for g in by_model} == weekly
    for g in by_model:
        before = weekly.get((g.week - timedelta(days=7), g.value), 0)
        assert g.change == (pytest.approx(g.tokens / before - 1) if before else None)


def test_monthly_shares_equal_the_events(
    market: str, query: queries.Query, events: list[Event]
) -> None:
    sums: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for e in events:
        sums[month_of(e)][label(e, "language")] += tokens(e)
    rows = query(
        f"SELECT month, value, token_share FROM {market}.monthly_shares "
        "WHERE dimension = 'language'",
        {},
    )
    want = {(m, v): t / sum(vs.values()) for m, vs in sums.items() for v, t in vs.items()}
    assert_close({(r[0], r[1]): r[2] for r in rows}, want)


# --- crafted events: continents, returning members, models per member ---------------


@pytest.fixture(scope="module")
def crafted(ch_client: Client) -> Iterator[tuple[str, list[Event]]]:
    """Events over five months with regions of every spelling, apps that leave and come
    back, and users of several models."""
    regions = [*CONTINENT_OF, None]
    start = datetime(2026, 1, 5, tzinfo=UTC)
    out: list[Event] = []
    for i in range(1500):
        app = i % 12
        month = (i // 12) % 5
        # app 0..3 skip month 2 and come back; app 4..5 leave after month 1.
        if (app < 4 and month == 2) or (app in (4, 5) and month > 1):
            month = 0
        ts = start + timedelta(days=30 * month + (i % 23), hours=i % 24)
        out.append(
            event(
                i,
                seed=7,
                ts=ts.isoformat().replace("+00:00", "Z"),
                model="deepseek/deepseek-v3.2" if (i // 60) % 3 else "qwen/qwen3-coder",
                app_id=f"app-{app}",
                user_id=f"user-{i % 40}",
                region=regions[i % len(regions)],
            )
        )
        if out[-1]["region"] is None:
            del out[-1]["region"]
    database = unique("crafted_")
    store_events(ch_client, database, out)
    yield database, out
    ch_client.command(f"DROP DATABASE IF EXISTS {database}")


def test_continents_group_regions_of_every_spelling(
    crafted: tuple[str, list[Event]], query: queries.Query
) -> None:
    database, events = crafted
    continent = lambda e: CONTINENT_OF.get(e.get("region") or "", "unidentified")  # noqa: E731
    for measure, amount in (("tokens", tokens), ("spend_usd", lambda e: float(e["cost_usd"]))):
        want = shares_by_week(events, continent, amount)
        got = study.continent_shares(query, database, weeks=None, measure=measure)
        assert_close({(p.period, p.value): p.share for p in got}, want)
    assert {p.value for p in got} == set(CONTINENT_OF.values())


def expected_monthly(events: list[Event], model: str, member: str) -> dict[tuple, tuple]:
    months: dict[str, set[date]] = defaultdict(set)
    for e in events:
        if e.get(member) and dim("model")(e) == model:
            months[str(e[member])].add(month_of(e))
    cohorts: dict[date, list[str]] = defaultdict(list)
    for m, ms in months.items():
        cohorts[min(ms)].append(m)
    out = {}
    for cohort, members in cohorts.items():
        seen: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for m in members:
            for month in months[m]:
                after = (month.year - cohort.year) * 12 + month.month - cohort.month
                prev = (month.replace(day=1) - timedelta(days=1)).replace(day=1)
                seen[after][0] += 1
                seen[after][1] += after > 0 and prev not in months[m]
        for after, (active, back) in seen.items():
            out[(cohort, after)] = (len(members), active, back, active / len(members))
    return out


def test_monthly_retention_shows_returning_members(
    crafted: tuple[str, list[Event]], query: queries.Query, market: str, events: list[Event]
) -> None:
    database, crafted_events = crafted
    for db, evs in ((database, crafted_events), (market, events)):
        for member, members in (("app_id", "apps"), ("user_id", "users")):
            model = "deepseek/deepseek-v3.2"
            rows = study.monthly_retention(query, db, model, members=members)
            want = expected_monthly(evs, model, member)
            got = {(r.cohort_month, r.months_after): tuple(r[2:]) for r in rows}
            assert_close(got, want, (db, members))
    rows = study.monthly_retention(query, database, "deepseek/deepseek-v3.2")
    first = [r for r in rows if r.cohort_month == date(2026, 1, 1)]
    assert [r.returning for r in first if r.months_after == 3] == [4]  # apps 0..3 came back


def test_models_per_member_equal_the_events(
    crafted: tuple[str, list[Event]], query: queries.Query, market: str, events: list[Event]
) -> None:
    for db, evs in (crafted, (market, events)):
        for member, members in (("app_id", "apps"), ("user_id", "users")):
            per: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            for e in evs:
                if e.get(member):
                    per[str(e[member])][dim("model")(e)] += tokens(e)
            counts: dict[int, list[float]] = defaultdict(list)
            for used in per.values():
                counts[len(used)].append(max(used.values()) / sum(used.values()))
            want = [
                (k, len(v), len(v) / len(per), statistics.fmean(v))
                for k, v in sorted(counts.items())
            ]
            got = study.models_per_member(query, db, members=members)
            assert_close({b.models: tuple(b) for b in got}, {w[0]: w for w in want}, db)


def test_study_queries_refuse_names_off_the_allowlists() -> None:
    def never(sql: str, params: dict[str, Any]) -> list[list[Any]]:
        raise AssertionError(f"no SQL may run: {sql}")

    evil = "x; DROP TABLE raw_events"
    for call in (
        lambda: queries.weekly_shares(never, "db", "model", where={evil: "open"}),
        lambda: queries.weekly_shares(never, "db", evil, where={"weights": "open"}),
        lambda: study.per_request(never, "db", evil),
        lambda: study.tool_use(never, "db", evil),
        lambda: study.prices(never, "db", evil),
        lambda: study.growth(never, "db", evil),
        lambda: study.continent_shares(never, "db", measure=evil),
        lambda: study.monthly_retention(never, "db", "m", members=evil),
        lambda: study.models_per_member(never, evil),
    ):
        with pytest.raises(ValueError, match="not allowed"):
            call()
