"""The traffic simulator reproduces the real weekly figures, and only valid events."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.paths import SHARED
from tests.weekly import CHINA, US
from tokenshare.producers import market_data
from tokenshare.producers.simulator import (
    SimConfig,
    expected_weekly_tokens,
    is_valid_payload,
    simulate,
)
from tokenshare.schema.event import TokenEvent

SHIPPED = market_data.DATA_PATH

CFG = SimConfig(events=60_000, seed=7)


@pytest.fixture(scope="module")
def events() -> list[dict[str, object]]:
    return list(simulate(CFG))


@pytest.fixture(scope="module")
def shipped() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(SHIPPED.read_text(encoding="utf-8"))
    return doc


def _weeks_by_day(shipped: dict[str, Any]) -> dict[str, str]:
    """UTC day (ISO) -> week_start of the covered week containing it."""
    out = {}
    for w in shipped["weeks"]:
        start = date.fromisoformat(w["week_start"])
        for d in range(7):
            out[(start + timedelta(days=d)).isoformat()] = w["week_start"]
    return out


def _week_of(ts: str, weeks_by_day: dict[str, str]) -> str:
    day = datetime.fromisoformat(ts).astimezone(UTC).date().isoformat()
    assert day in weeks_by_day, ts
    return weeks_by_day[day]


def _sums(
    events: list[dict[str, object]], shipped: dict[str, Any], field: str | None = None
) -> dict[tuple[str, str], int]:
    """Per (week_start, slug): prompt + completion tokens, or the sum of ``field``."""
    weeks = _weeks_by_day(shipped)
    out: dict[tuple[str, str], int] = defaultdict(int)
    for e in events:
        key = (weeks[str(e["ts"])[:10]], str(e["model"]))  # ts is "...Z", so [:10] is the UTC day
        if field is None:
            out[key] += int(str(e["prompt_tokens"])) + int(str(e["completion_tokens"]))
        else:
            out[key] += int(str(e[field]))
    return dict(out)


def _real_volumes(shipped: dict[str, Any]) -> dict[tuple[str, str], tuple[int, bool]]:
    """Independent restatement of the documented rule: model-page detail where it
    is consistent with the week, else the rankings headline total."""
    out: dict[tuple[str, str], tuple[int, bool]] = {}
    for w in shipped["weeks"]:
        detail = {
            m["slug"]: (m["prompt_tokens"] + m["completion_tokens"]) / m["total_tokens"]
            for m in w["models"]
            if m["request_count"] > 0 and m["prompt_tokens"] + m["completion_tokens"] > 0
        }
        typical = statistics.median(detail.values()) if detail else 0.0
        for m in w["models"]:
            ok = m["slug"] in detail and abs(detail[m["slug"]] / typical - 1) <= 0.25
            volume = m["prompt_tokens"] + m["completion_tokens"] if ok else m["total_tokens"]
            out[(w["week_start"], m["slug"])] = (volume, ok)
    return out


def test_exact_event_count(events: list[dict[str, object]]) -> None:
    assert len(events) == CFG.events
    assert [e["event_id"] for e in events] == [f"sim7-{i:09d}" for i in range(CFG.events)]


def test_every_event_is_valid_on_the_wire(events: list[dict[str, object]]) -> None:
    for e in events:
        raw = orjson.dumps(orjson.loads(orjson.dumps(e)))
        event = TokenEvent.model_validate_json(raw)
        assert event.model == e["model"]
        assert is_valid_payload(e)


def test_token_sums_match_expected_and_real_shares(
    events: list[dict[str, object]], shipped: dict[str, Any]
) -> None:
    got = _sums(events, shipped)
    expected = expected_weekly_tokens(CFG)
    assert got == expected

    real = _real_volumes(shipped)
    assert set(real) == set(expected)
    for week in {w for w, _ in real}:
        keys = [k for k in real if k[0] == week]
        real_total = sum(real[k][0] for k in keys)
        sim_total = sum(got[k] for k in keys)
        for k in keys:
            assert got[k] / sim_total == pytest.approx(real[k][0] / real_total, abs=1e-6), k


def test_one_scale_factor_for_all_weeks_and_fields(
    events: list[dict[str, object]], shipped: dict[str, Any]
) -> None:
    real = _real_volumes(shipped)
    got = _sums(events, shipped)
    scale = sum(got.values()) / sum(v for v, _ in real.values())
    for k, (volume, _) in real.items():
        assert abs(got[k] - volume * scale) <= 2, k
    # Where the model page is consistent, each token kind is scaled the same way.
    rows = {(w["week_start"], m["slug"]): m for w in shipped["weeks"] for m in w["models"]}
    for field in ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens"):
        sums = _sums(events, shipped, field)
        for k, (_, consistent) in real.items():
            if consistent:
                assert abs(sums.get(k, 0) - rows[k][field] * scale) <= 2, (field, k)


def test_per_request_sizes_follow_the_real_averages(
    events: list[dict[str, object]], shipped: dict[str, Any]
) -> None:
    weeks = _weeks_by_day(shipped)
    counts = Counter((weeks[str(e["ts"])[:10]], e["model"]) for e in events)
    prompts = _sums(events, shipped, "prompt_tokens")
    consistent = {k for k, (_, ok) in _real_volumes(shipped).items() if ok}
    checked = 0
    for w in shipped["weeks"]:
        for m in w["models"]:
            k = (w["week_start"], m["slug"])
            if counts[k] >= 100 and k in consistent:
                real_mean = m["prompt_tokens"] / m["request_count"]
                assert prompts[k] / counts[k] == pytest.approx(real_mean, rel=0.02), k
                checked += 1
    assert checked > 100
    prompt = [int(str(e["prompt_tokens"])) for e in events]
    assert max(prompt) > 20 * statistics.median(prompt)  # heavy tail


def test_timestamps_inside_the_covered_week_and_in_order(
    events: list[dict[str, object]], shipped: dict[str, Any]
) -> None:
    week_of_model = defaultdict(set)
    for w in shipped["weeks"]:
        for m in w["models"]:
            week_of_model[m["slug"]].add(w["week_start"])
    weeks = _weeks_by_day(shipped)
    times = []
    for e in events:
        ts = str(e["ts"])
        assert ts.endswith("Z")
        times.append(datetime.fromisoformat(ts))
        assert _week_of(ts, weeks) in week_of_model[str(e["model"])]
    assert times == sorted(times)
    assert times[0] >= datetime(2025, 11, 9, tzinfo=UTC)
    assert times[-1] < datetime(2026, 5, 11, tzinfo=UTC)


def test_deterministic_by_seed() -> None:
    cfg = SimConfig(events=3_000, seed=11)
    assert list(simulate(cfg)) == list(simulate(cfg))
    assert list(simulate(cfg)) != list(simulate(SimConfig(events=3_000, seed=12)))


def test_invalid_ratio_mixes_in_that_many_rejected_payloads() -> None:
    clean = list(simulate(SimConfig(events=5_000, seed=3)))
    mixed = list(simulate(SimConfig(events=5_000, seed=3, invalid_ratio=0.1)))
    assert len(mixed) == 5_500
    valid = [d for d in mixed if is_valid_payload(d)]
    assert len(mixed) - len(valid) == 500
    assert valid == clean  # the valid stream does not depend on invalid_ratio
    for d in mixed:
        if d not in clean:
            with pytest.raises(ValueError):  # pydantic's ValidationError is a ValueError
                TokenEvent.model_validate_json(orjson.dumps(d))


def test_week_filter() -> None:
    cfg = SimConfig(events=4_000, weeks=("2026-02-08", "2026-02-16"))
    out = list(simulate(cfg))
    assert len(out) == 4_000
    assert {str(e["ts"])[:10] for e in out} <= {
        (date(2026, 2, 1) + timedelta(days=d)).isoformat() for d in range(15) if d != 7
    }
    assert {w for w, _ in expected_weekly_tokens(cfg)} == {"2026-02-01", "2026-02-09"}


def test_one_event_per_model_week_at_the_minimum() -> None:
    n = sum(len(w.models) for w in market_data.load_market().weeks)
    out = list(simulate(SimConfig(events=n)))
    assert len(out) == n and all(is_valid_payload(e) for e in out)
    with pytest.raises(ValueError):
        list(simulate(SimConfig(events=n - 1)))


def test_china_overtakes_us_in_the_week_of_9_15_february(
    events: list[dict[str, object]], shipped: dict[str, Any]
) -> None:
    by_origin: dict[str, Counter[str]] = defaultdict(Counter)
    for (week, slug), tokens in _sums(events, shipped).items():
        author = slug.split("/", 1)[0]
        by_origin[week]["CN" if author in CHINA else "US" if author in US else "other"] += tokens
    assert by_origin["2026-02-01"]["US"] > by_origin["2026-02-01"]["CN"]
    assert by_origin["2026-02-09"]["CN"] > by_origin["2026-02-09"]["US"]


def test_programming_share_rises(events: list[dict[str, object]]) -> None:
    first = [e for e in events if str(e["ts"]) < "2025-11-16"]
    last = [e for e in events if str(e["ts"]) >= "2026-05-04"]
    share = [sum(e["category"] == "programming" for e in es) / len(es) for es in (first, last)]
    assert share[0] == pytest.approx(0.45, abs=0.04)
    assert share[1] == pytest.approx(0.55, abs=0.04)


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


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared research folder not present")
def test_rebuild_reproduces_the_shipped_file(tmp_path: Path) -> None:
    out = tmp_path / "weekly_top_models.json"
    assert market_data.rebuild(SHARED, out) == 26
    assert out.read_bytes() == SHIPPED.read_bytes()
