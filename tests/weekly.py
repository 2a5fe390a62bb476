"""The real weekly figures (OpenRouter's weekly top 10, in the research folder), the
crossover rule the tests replay them with, and an independent recomputation of the
China/US crossovers straight from the files."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

from tests.paths import SHARED

WEEKLY = SHARED / "data" / "openrouter-weekly-top10"
# Written out here, independently of the catalog, from the labs' home countries.
CHINA = {"deepseek", "qwen", "moonshotai", "minimax", "z-ai", "xiaomi", "tencent", "stepfun"}
US = {"anthropic", "openai", "google", "x-ai", "nvidia", "arcee-ai"}

RULES: dict[str, Any] = {
    "lateness_hours": 24,
    "windows": ["iso_week"],
    "crossover": {
        "dimensions": ["origin_bloc"],
        "measure": "tokens",
        "top_k": 2,
        "min_margin_pp": 1.0,
        "confirm_windows": 2,
        "exclude_unidentified": True,
        "pairs": [{"dimension": "origin_bloc", "a": "China", "b": "US"}],
    },
    "thresholds": [],
    "concentration": [],
    "jumps": [],
    "ranks": [],
}


def recompute() -> list[tuple[str, str, float, float]]:
    """(ISO week, 'China>US' or 'US>China', china share, us share) straight from the files,
    with the same anti-flapping rule: a lead counts with a 1-point margin or 2 weeks in a row."""
    weeks = []
    for path in sorted(WEEKLY.glob("*.json")):
        doc = orjson.loads(path.read_bytes())
        day = date.fromisoformat(doc["date"]) - timedelta(days=1)
        china = sum(m["total_tokens"] for m in doc["models"] if m["slug"].split("/")[0] in CHINA)
        us = sum(m["total_tokens"] for m in doc["models"] if m["slug"].split("/")[0] in US)
        known = sum(
            m["total_tokens"] for m in doc["models"] if not m["slug"].startswith("openrouter/")
        )
        year, week, _ = day.isocalendar()
        weeks.append((f"{year}-W{week:02d}", china / known, us / known))
    out, leader, run = [], None, 0
    for label, cn, us in weeks:
        now = "China" if cn > us else "US"
        if leader is None or now == leader:
            leader, run = leader or now, 0
            continue
        run += 1
        if abs(cn - us) >= 0.01 or run >= 2:
            other = "US" if now == "China" else "China"
            out.append((label, f"{now}>{other}", cn, us))
            leader, run = now, 0
    return out


def source_shares() -> dict[str, tuple[float, float]]:
    """ISO week -> (China, US) share of identified tokens, from the weekly files alone."""
    out = {}
    for path in sorted(WEEKLY.glob("*.json")):
        doc = orjson.loads(path.read_bytes())
        year, week, _ = (date.fromisoformat(doc["date"]) - timedelta(days=1)).isocalendar()
        known = [m for m in doc["models"] if not m["slug"].startswith("openrouter/")]
        total = sum(m["total_tokens"] for m in known)
        china = sum(m["total_tokens"] for m in known if m["slug"].split("/")[0] in CHINA)
        us = sum(m["total_tokens"] for m in known if m["slug"].split("/")[0] in US)
        out[f"{year}-W{week:02d}"] = (china / total, us / total)
    return out


def expected_final() -> list[tuple[str, str]]:
    """Crossovers of closed weeks: all but the newest week of data, still open."""
    expected = recompute()
    newest = max(source_shares())  # an ISO label sorts by time
    return [(w, s) for w, s, _, _ in expected if w != newest]


def rules_file(folder: Path) -> Path:
    """RULES as the TOML file a worker reads (written by hand: tomllib only reads), with
    idle partitions left out of the watermark after 3 s so a replay's windows close."""
    c = RULES["crossover"]
    text = f"""
lateness_hours = {RULES["lateness_hours"]}
idle_partition_seconds = 3
windows = ["iso_week"]
thresholds = []
concentration = []
jumps = []
ranks = []

[crossover]
dimensions = ["origin_bloc"]
measure = "tokens"
top_k = 2
min_margin_pp = {c["min_margin_pp"]}
confirm_windows = {c["confirm_windows"]}
exclude_unidentified = true
pairs = [{{ dimension = "origin_bloc", a = "China", b = "US" }}]
"""
    path = folder / "rules.toml"
    path.write_text(text)
    return path
