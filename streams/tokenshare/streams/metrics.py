"""Prometheus text exposition of a worker's counters and current shares."""

from __future__ import annotations

from tokenshare.streams.ingest import IngestStats
from tokenshare.streams.shares.service import ShareStats


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(ingest: IngestStats, shares: ShareStats, lag: int) -> str:
    stats = ingest.as_dict()
    lines = [
        "# HELP tokenshare_events_total Valid events this worker forwarded to the store.",
        "# TYPE tokenshare_events_total counter",
        f"tokenshare_events_total {stats['events']}",
        "# HELP tokenshare_dead_letters_total Invalid inputs sent to the dead-letter topic.",
        "# TYPE tokenshare_dead_letters_total counter",
        f"tokenshare_dead_letters_total {stats['dead_letters']}",
        "# HELP tokenshare_events_per_second Average ingest rate since start.",
        "# TYPE tokenshare_events_per_second gauge",
        f"tokenshare_events_per_second {stats['events_per_s']}",
        "# HELP tokenshare_consumer_lag Events-topic messages not yet consumed by this worker.",
        "# TYPE tokenshare_consumer_lag gauge",
        f"tokenshare_consumer_lag {lag}",
        "# HELP tokenshare_alerts_total Alerts this worker published (as leader).",
        "# TYPE tokenshare_alerts_total counter",
        f"tokenshare_alerts_total {shares.alerts}",
        "# HELP tokenshare_share Share of tokens by cohort in the open window.",
        "# TYPE tokenshare_share gauge",
    ]
    for snap in shares.current.values():
        if snap["measure"] != "tokens":
            continue
        for item in snap["values"]:
            labels = (
                f'window="{snap["window_kind"]}",dimension="{_escape(snap["dimension"])}",'
                f'value="{_escape(item["value"])}"'
            )
            lines.append(f"tokenshare_share{{{labels}}} {item['share']:.6f}")
    return "\n".join(lines) + "\n"
