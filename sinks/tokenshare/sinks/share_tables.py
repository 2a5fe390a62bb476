"""Alerts and share snapshots from their topics into ClickHouse.

Both tables are ReplacingMergeTree keyed by what identifies the record
(alert id; window, dimension, measure, value), so a redelivered message
replaces itself instead of adding a row. They take the decoded, validated
messages (``schema.outputs``), so a row always follows the contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
from clickhouse_connect.driver.client import Client

from tokenshare.schema.outputs import AlertMessage, ShareSnapshot
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
    "severity",
    "kind",
    "explanation",
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


def write_alerts(client: Client, database: str, alerts: Sequence[AlertMessage]) -> None:
    if not alerts:
        return
    now = datetime.now(UTC)
    rows = [
        [
            a.alert_id,
            a.rule,
            a.status,
            a.dimension,
            a.measure,
            a.window_kind,
            a.window_start,
            a.window_end,
            a.window_label,
            a.subject,
            a.text,
            orjson.dumps(a.details).decode(),
            now,
            a.severity,
            a.kind,
            a.explanation,
        ]
        for a in alerts
    ]
    client.insert(
        f"{database}.alerts", rows, column_names=list(ALERT_COLUMNS), settings=INSERT_SETTINGS
    )


def write_snapshots(client: Client, database: str, snapshots: Sequence[ShareSnapshot]) -> None:
    rows = [
        [
            s.window_kind,
            s.window_start,
            s.window_end,
            s.dimension,
            s.measure,
            item.value,
            item.total,
            item.share,
            item.share_identified,
            s.final,
            s.computed_at,
        ]
        for s in snapshots
        for item in s.values
    ]
    if rows:
        client.insert(
            f"{database}.share_snapshots",
            rows,
            column_names=list(SNAPSHOT_COLUMNS),
            settings=INSERT_SETTINGS,
        )
