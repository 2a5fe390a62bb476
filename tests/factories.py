"""Events for tests (valid ones that vary, one of every kind of bad input, an alert) and
unique names for what tests create (topics, databases, consumer groups)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

MODELS = [
    "deepseek/deepseek-v3.2-20251201", "anthropic/claude-4.5-sonnet-20250929",
    "google/gemini-2.5-flash", "x-ai/grok-4.1-fast", "mistralai/mistral-small-3.2-24b-instruct",
    "openrouter/hunter-alpha", "someone-new/unknown-model-7b",
]  # fmt: skip


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def event(i: int, *, seed: int = 0, **override: Any) -> dict[str, Any]:
    rnd = random.Random(seed * 1_000_003 + i)
    prompt = rnd.randint(10, 60_000)
    completion = rnd.randint(1, 4_000)
    ts = datetime(2026, 2, 1, tzinfo=UTC) + timedelta(seconds=rnd.randint(0, 21 * 86_400))
    doc: dict[str, Any] = {
        "event_id": f"ev-{seed}-{i}",
        "ts": ts.isoformat().replace("+00:00", "Z"),
        "model": rnd.choice(MODELS),
        "provider": rnd.choice(["DeepSeek", "Anthropic", "Google", "Together"]),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "reasoning_tokens": rnd.randint(0, completion),
        "cached_tokens": rnd.randint(0, prompt),
        "cost_usd": round(rnd.random() * 0.05, 6),
        "app_id": f"app-{rnd.randint(1, 30)}",
        "user_id": f"u-{rnd.randint(1, 500):x}",
        "category": rnd.choice(["programming", "roleplay", "translation"]),
        "region": rnd.choice(["us-east", "eu-west"]),
        "language": rnd.choice(["en", "zh", "es"]),
        "tool_calls": rnd.randint(0, 3),
        "latency_ms": rnd.randint(100, 30_000),
        "finish_reason": "stop",
        "streamed": True,
    }
    doc.update(override)
    return doc


def bad_inputs() -> list[tuple[str, bytes]]:
    """(what is wrong, message value): every one must land on the dead-letter topic."""
    good = event(0, seed=99)
    missing = {k: v for k, v in good.items() if k != "model"}
    return [
        ("not JSON", b"this is not json {"),
        ("empty object", b"{}"),
        ("missing model", orjson.dumps(missing)),
        ("string tokens", orjson.dumps({**good, "event_id": "bad-1", "prompt_tokens": "12"})),
        ("negative tokens", orjson.dumps({**good, "event_id": "bad-2", "completion_tokens": -5})),
        ("absurd tokens", orjson.dumps({**good, "event_id": "bad-3", "prompt_tokens": 10**12})),
        ("huge integer", b'{"event_id":"bad-4","prompt_tokens":1' + b"0" * 400 + b"}"),
        (
            "NaN cost",
            orjson.dumps({**good, "event_id": "bad-5"}).replace(
                b'"cost_usd":' + orjson.dumps(good["cost_usd"]), b'"cost_usd":NaN'
            ),
        ),
        ("far future", orjson.dumps({**good, "event_id": "bad-6", "ts": "2999-01-01T00:00:00Z"})),
        ("far past", orjson.dumps({**good, "event_id": "bad-7", "ts": "2001-01-01T00:00:00Z"})),
        ("naive ts", orjson.dumps({**good, "event_id": "bad-8", "ts": "2026-02-01T00:00:00"})),
        (
            "reasoning > completion",
            orjson.dumps(
                {**good, "event_id": "bad-9", "completion_tokens": 5, "reasoning_tokens": 6}
            ),
        ),
        ("bad slug", orjson.dumps({**good, "event_id": "bad-10", "model": "no slash here"})),
        ("truncated array", b'[{"event_id": "bad-11", "model": "a/b"'),
    ]


def crossover_alert() -> dict[str, Any]:
    return {
        "alert_id": "crossover-test-1",
        "rule": "crossover",
        "status": "final",
        "dimension": "origin_bloc",
        "measure": "tokens",
        "window_kind": "iso_week",
        "window_start": "2026-02-09",
        "window_end": "2026-02-16",
        "window_label": "2026-W07",
        "subject": "China over US",
        "text": "China overtook US",
        "details": {"leader": "China", "overtaken": "US", "margin_pp": 1.5},
    }
