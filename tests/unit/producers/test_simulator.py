"""The traffic simulator emits the planned market exactly, and only valid events."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.paths import SHARED
from tests.weekly import CHINA, US
from tokenshare.producers import market_data
from tokenshare.producers.market_plan import default_plan, iso_week_start
from tokenshare.producers.simulator import (
    SimConfig,
    expected_weekly_tokens,
    is_valid_payload,
    simulate,
)
from tokenshare.schema.catalog import Catalog
from tokenshare.schema.event import TokenEvent

SHIPPED = market_data.DATA_PATH
CFG = SimConfig(events=25_000, seed=7)


@pytest.fixture(scope="module")
def events() -> list[dict[str, object]]:
    return list(simulate(CFG))


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def _monday(ts: object) -> str:
    day = datetime.fromisoformat(str(ts)).astimezone(UTC).date()
    return (day - timedelta(days=day.weekday())).isoformat()


def _tokens(e: dict[str, object]) -> int:
    return int(str(e["prompt_tokens"])) + int(str(e["completion_tokens"]))


def test_exact_event_count(events: list[dict[str, object]]) -> None:
    assert len(events) == CFG.events
    assert [e["event_id"] for e in events] == [f"sim7-{i:09d}" for i in range(CFG.events)]


def test_every_event_is_valid_on_the_wire(events: list[dict[str, object]]) -> None:
    for e in events:
        event = TokenEvent.model_validate_json(orjson.dumps(e))
        assert event.model == e["model"]
        assert is_valid_payload(e)


def test_token_sums_match_the_plan(events: list[dict[str, object]]) -> None:
    got: dict[tuple[str, str], int] = defaultdict(int)
    for e in events:
        got[(_monday(e["ts"]), str(e["model"]))] += _tokens(e)
    assert dict(got) == expected_weekly_tokens(CFG)


def test_long_tail_of_models_and_labs(events: list[dict[str, object]], catalog: Catalog) -> None:
    slugs = {str(e["model"]) for e in events}
    authors = {catalog.lookup(s).author for s in slugs}
    assert len(slugs) >= 220  # 300+ at the demo's 300,000 events (see the facts test)
    assert len(authors) >= 50
    blocs = Counter(catalog.lookup(s).origin_bloc for s in slugs)
    assert blocs["RoW"] >= 30 and blocs["China"] >= 50 and blocs["unidentified"] >= 3


def test_calendar_is_iso_weeks_without_gaps(events: list[dict[str, object]]) -> None:
    days = Counter(str(e["ts"])[:10] for e in events)  # ts ends in Z: [:10] is the UTC day
    first, last = date.fromisoformat(min(days)), date.fromisoformat(max(days))
    assert first.weekday() == 0 and last.weekday() == 6  # Monday .. Sunday
    assert len(days) == (last - first).days + 1  # every day has traffic (2026-02-08 too)
    assert "2026-02-08" in days
    weeks = Counter(_monday(e["ts"]) for e in events)
    assert len(weeks) == len(market_data.load_market().weeks) == 26
    times = [datetime.fromisoformat(str(e["ts"])) for e in events]
    assert times == sorted(times)


def test_weeks_are_the_iso_weeks_of_the_snapshots() -> None:
    market = market_data.load_market()
    for week in market.weeks:
        monday = iso_week_start(week.week_start)
        assert monday.weekday() == 0
        covered = {week.week_start + timedelta(days=d) for d in range(7)}
        assert len(covered & {monday + timedelta(days=d) for d in range(7)}) >= 6


def test_china_us_lead_follows_the_real_series_week_by_week(
    events: list[dict[str, object]], catalog: Catalog
) -> None:
    sim: dict[str, Counter[str]] = defaultdict(Counter)
    for e in events:
        sim[_monday(e["ts"])][catalog.lookup(str(e["model"])).origin_bloc] += _tokens(e)
    real = []
    for week in market_data.load_market().weeks:  # written out independently of the catalog
        china = sum(m.usage.total_tokens for m in week.models if m.author in CHINA)
        us = sum(m.usage.total_tokens for m in week.models if m.author in US)
        real.append((iso_week_start(week.week_start).isoformat(), china > us))
    assert [sim[w]["China"] > sim[w]["US"] for w, _ in real] == [lead for _, lead in real]
    first = next(w for w, lead in real if lead)
    assert first == "2026-02-09"  # 2026-W07


def test_no_model_drops_to_zero_when_it_leaves_the_top_10() -> None:
    plan = default_plan()
    market = market_data.load_market()
    index = {m.slug: j for j, m in enumerate(plan.models)}
    for i, (prev, cur) in enumerate(zip(market.weeks, market.weeks[1:], strict=False)):
        for m in prev.models:
            if all(m.slug != n.slug for n in cur.models):
                assert plan.tokens[i + 1, index[m.slug]] > 0.1 * plan.tokens[i, index[m.slug]]


def test_size_classes(events: list[dict[str, object]], catalog: Catalog) -> None:
    sizes = Counter(
        (catalog.lookup(str(e["model"])).weights, catalog.lookup(str(e["model"])).size_class)
        for e in events
    )
    assert {s for (w, s) in sizes if w == "closed"} == {"undisclosed"}
    assert {"small", "medium", "large"} <= {s for (w, s) in sizes if w == "open"}
    assert {s for (w, s) in sizes if w == "unidentified"} == {"unidentified"}


def test_free_variants_are_their_own_slugs_at_no_cost(
    events: list[dict[str, object]], catalog: Catalog
) -> None:
    free = [e for e in events if str(e["model"]).endswith(":free")]
    assert {e["cost_usd"] for e in free} == {0.0}
    paid_twins = {str(e["model"]).removesuffix(":free") for e in free}
    paid = [e for e in events if e["model"] in paid_twins]
    assert paid and all(float(str(e["cost_usd"])) > 0 for e in paid if _tokens(e) > 100)


def test_cache_discount_lowers_the_cost(events: list[dict[str, object]]) -> None:
    plan = {m.slug: m for m in default_plan().models}
    checked = 0
    for e in events:
        m = plan[str(e["model"])]
        cached = int(str(e["cached_tokens"]))
        if m.free or cached == 0:
            continue
        prompt, completion = int(str(e["prompt_tokens"])), int(str(e["completion_tokens"]))
        listed = prompt * m.prompt_price + completion * m.completion_price
        billed = (prompt - cached + cached * m.cache_discount) * m.prompt_price + (
            completion * m.completion_price
        )
        assert float(str(e["cost_usd"])) == pytest.approx(billed, abs=1e-9)
        assert m.cache_discount >= 1 or billed < listed
        checked += 1
    assert checked > 5_000


def test_users_have_one_region_one_language_and_a_few_models(
    events: list[dict[str, object]],
) -> None:
    regions: dict[object, set[object]] = defaultdict(set)
    languages: dict[object, set[object]] = defaultdict(set)
    apps: dict[object, set[object]] = defaultdict(set)
    models: dict[object, set[object]] = defaultdict(set)
    for e in events:
        u = e["user_id"]
        regions[u].add(e["region"])
        languages[u].add(e["language"])
        apps[u].add(e["app_id"])
        models[u].add(e["model"])
    assert all(len(v) == 1 for v in regions.values())
    assert all(len(v) == 1 for v in languages.values())
    assert all(len(v) == 1 for v in apps.values())
    assert max(len(v) for v in models.values()) <= 4
    per_app = Counter(str(e["app_id"]) for e in events)
    assert per_app.most_common(1)[0][1] < 0.1 * len(events)
    app_models: dict[str, set[object]] = defaultdict(set)
    for e in events:
        app_models[str(e["app_id"])].add(e["model"])
    sizes = sorted(len(v) for v in app_models.values())
    assert sizes[len(sizes) // 2] <= 12  # most apps use a handful of models


def test_deterministic_by_seed() -> None:
    cfg = SimConfig(events=2_000, seed=11)
    first = list(simulate(cfg))
    assert first == list(simulate(cfg))
    assert first != list(simulate(SimConfig(events=2_000, seed=12)))


def test_invalid_ratio_mixes_in_that_many_rejected_payloads() -> None:
    clean = list(simulate(SimConfig(events=5_000, seed=3)))
    mixed = list(simulate(SimConfig(events=5_000, seed=3, invalid_ratio=0.1)))
    assert len(mixed) == 5_500
    valid = [d for d in mixed if is_valid_payload(d)]
    assert len(mixed) - len(valid) == 500
    assert valid == clean  # the valid stream does not depend on invalid_ratio
    clean_ids = {d["event_id"] for d in clean}
    for d in mixed:
        if d.get("event_id") not in clean_ids:
            with pytest.raises(ValueError):  # pydantic's ValidationError is a ValueError
                TokenEvent.model_validate_json(orjson.dumps(d))


def test_week_filter() -> None:
    cfg = SimConfig(events=4_000, weeks=("2026-02-08", "2026-02-16"))
    out = list(simulate(cfg))
    assert len(out) == 4_000
    assert {_monday(e["ts"]) for e in out} == {"2026-02-02", "2026-02-09"}
    assert {w for w, _ in expected_weekly_tokens(cfg)} == {"2026-02-02", "2026-02-09"}


def test_rejects_bad_configs() -> None:
    for cfg in (SimConfig(events=0), SimConfig(seed=-1), SimConfig(invalid_ratio=2.0)):
        with pytest.raises(ValueError):
            list(simulate(cfg))
    with pytest.raises(ValueError, match="no week"):
        list(simulate(SimConfig(events=10, weeks=("2030-01-01", "2030-02-01"))))


def test_imputed_rows_are_exactly_the_known_gaps() -> None:
    imputed = {
        (w.collected_on.isoformat(), m.slug)
        for w in market_data.load_market().weeks
        for m in w.models
        if m.usage.imputed
    }
    mimo = "xiaomi/mimo-v2-flash-20251210:free"
    assert imputed == {
        ("2025-11-30", "x-ai/grok-4.1-fast:free"),
        ("2025-12-07", "x-ai/grok-4.1-fast:free"),
        *((d, mimo) for d in ("2025-12-21", "2025-12-28", "2026-01-04", "2026-01-11")),
        ("2026-01-18", mimo),
        ("2026-01-25", mimo),
        ("2026-03-23", "openrouter/hunter-alpha"),
        ("2026-04-06", "qwen/qwen3.6-plus-preview:free"),
        ("2026-04-13", "qwen/qwen3.6-plus-04-02:free"),
        *(("2026-05-11", m.slug) for m in market_data.load_market().weeks[-1].models),
    }


def test_rebuild_reproduces_the_shipped_file(tmp_path: Path) -> None:
    assert SHARED.is_dir(), "the research folder ../shared is needed to rebuild the data"
    out = tmp_path / "weekly_top_models.json"
    assert market_data.rebuild(SHARED, out) == 26
    assert out.read_bytes() == SHIPPED.read_bytes()
    doc: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    assert len(doc["weeks"]) == 26
