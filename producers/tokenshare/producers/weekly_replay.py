"""Replay real weekly per-model totals as events, shares intact.

Each weekly snapshot (OpenRouter's top models of a week) becomes events whose
tokens add up, per model, to the week's `total_tokens` divided by `scale`
(integer-exact, so every share equals the real one to within 1/total). All
events of a snapshot fall on its last covered day (the day before it was
collected), so that each ISO week and each rolling 7-day window holds exactly
one snapshot and its shares are the snapshot's shares.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

#: The largest token count one replayed event carries (well under the contract's limit).
MAX_TOKENS_PER_EVENT = 5_000_000


@dataclass(frozen=True, slots=True)
class WeekTotal:
    collected_on: date
    slug: str
    total_tokens: int
    prompt_tokens: int
    completion_tokens: int

    @property
    def day(self) -> date:
        """The last day the snapshot covers: where its events are placed."""
        return self.collected_on - timedelta(days=1)


def load_week_totals(folder: Path) -> list[WeekTotal]:
    """Every (snapshot, model) of a folder of weekly JSON files, oldest first."""
    out = []
    for path in sorted(folder.glob("*.json")):
        doc = orjson.loads(path.read_bytes())
        collected = date.fromisoformat(doc["date"])
        for m in doc["models"]:
            out.append(
                WeekTotal(
                    collected,
                    m["slug"],
                    int(m["total_tokens"]),
                    int(m.get("prompt_tokens") or 0),
                    int(m.get("completion_tokens") or 0),
                )
            )
    return out


def scaled_total(week: WeekTotal, scale: int) -> int:
    return round(week.total_tokens / scale)


def replay_events(
    weeks: list[WeekTotal], scale: int = 10_000, run: str = "weekly"
) -> Iterator[dict[str, Any]]:
    """Events whose per-(day, model) token sums are `scaled_total`, in event-time order."""
    for week in sorted(weeks, key=lambda w: (w.day, w.slug)):
        remaining = scaled_total(week, scale)
        parts = max(1, -(-remaining // MAX_TOKENS_PER_EVENT))
        ratio = (
            week.prompt_tokens / (week.prompt_tokens + week.completion_tokens)
            if week.prompt_tokens + week.completion_tokens
            else 0.9
        )
        start = datetime.combine(week.day, datetime.min.time(), UTC)
        for i in range(parts):
            tokens = remaining // (parts - i)
            remaining -= tokens
            prompt = round(tokens * ratio)
            ts = start + timedelta(seconds=(i * 86_399) // parts)
            yield {
                "event_id": f"{run}-{week.collected_on}-{week.slug.replace('/', '.')}-{i}",
                "ts": ts.isoformat().replace("+00:00", "Z"),
                "model": week.slug,
                "provider": week.slug.split("/", 1)[0],
                "prompt_tokens": prompt,
                "completion_tokens": tokens - prompt,
                "category": "replay",
            }
