"""Alerts and share snapshots from their topics into ClickHouse.

Both tables are ReplacingMergeTree keyed by what identifies the record
(alert id; window, dimension, measure, value), so a redelivered message
replaces itself instead of adding a row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from tokenshare.sinks.clickhouse import INSERT_SETTINGS

ALERT_COLUMNS = (
    "alert_id",
    "rule",
    "status",
    "dimension",
    "measure",
    "window_kind",
    "window_start",
    "window_end",
    "window_label",
    "subject",
    "text",
    "details",
    "fired_at",
)
SNAPSHOT_COLUMNS = (
    "window_kind",
    "window_start",
    "window_end",
    "dimension",
    "measure",
    "value",
    "total",
    "share",
    "share_identified",
    "final",
    "computed_at",
)


def _date(text: str) -> Any:
    return datetime.fromisoformat(text).date()


def write_alerts(client: Client, database: str, docs: list[dict[str, Any]]) -> None:
    if not docs:
        return
    now = datetime.now(UTC)
    rows = [
        [
            d["alert_id"],
            d["rule"],
            d["status"],
            d["dimension"],
            d["measure"],
            d["window_kind"],
            _date(d["window_start"]),
            _date(d["window_end"]),
            d["window_label"],
            d["subject"],
            d["text"],
            orjson.dumps(d.get("details", {})).decode(),
            now,
        ]
        for d in docs
    ]
    client.insert(
        f"{database}.alerts", rows, column_names=list(ALERT_COLUMNS), settings=INSERT_SETTINGS
    )


def write_snapshots(client: Client, database: str, docs: list[dict[str, Any]]) -> None:
    rows = [
        [
            d["window_kind"],
            _date(d["window_start"]),
            _date(d["window_end"]),
            d["dimension"],
            d["measure"],
            item["value"],
            float(item["total"]),
            float(item["share"]),
            float(item["share_identified"]),
            bool(d["final"]),
            datetime.fromisoformat(d["computed_at"]),
        ]
        for d in docs
        for item in d["values"]
    ]
    if rows:
        client.insert(
            f"{database}.share_snapshots",
            rows,
            column_names=list(SNAPSHOT_COLUMNS),
            settings=INSERT_SETTINGS,
        )
