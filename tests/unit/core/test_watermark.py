"""One watermark rule: the store counts a row late exactly when the share stage
holds its day final, also while a source partition has gone quiet."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from clickhouse_connect.driver.client import Client

from tests.factories import event
from tokenshare.schema.catalog import Catalog
from tokenshare.schema.outputs import Window
from tokenshare.schema.rows import ROW_COLUMNS, RowBatch
from tokenshare.schema.wire import encode
from tokenshare.sinks.clickhouse import migrate
from tokenshare.sinks.raw_events import RawEventWriter
from tokenshare.streams.batch import Enricher, SourceMessage
from tokenshare.streams.shares.config import load_rules
from tokenshare.streams.shares.engine import ShareEngine, load_day_sums
from tokenshare.streams.shares.windows import is_final
from tokenshare.watermark import (
    PartitionProgress,
    WatermarkRule,
    event_time_reached,
    with_backlog,
)

QUIET, BUSY = 0, 1  # source partitions


def rows(partition: int, offset: int, *times: str) -> RowBatch:
    docs = [event(offset * 10 + i, seed=partition, ts=ts) for i, ts in enumerate(times)]
    message = SourceMessage("events", partition, offset, encode(docs))
    (batch,) = Enricher(Catalog.load(), 1 << 20).process([message]).rows
    return batch


@pytest.mark.parametrize(("idle_after_s", "quiet_is_idle"), [(30.0, True), (7200.0, False)])
def test_late_counting_agrees_with_window_finality(
    ch_client: Client, database: str, idle_after_s: float, quiet_is_idle: bool
) -> None:
    migrate(ch_client, database)
    rules = load_rules().model_copy(update={"idle_partition_seconds": idle_after_s})
    # One partition's last rows were stored an hour ago; it has been quiet since.
    quiet = rows(QUIET, 0, "2026-03-02T12:00:00Z")
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    ch_client.insert(
        f"{database}.raw_events",
        [quiet.columns[c] for c in ROW_COLUMNS] + [[an_hour_ago] * len(quiet)],
        column_names=[*ROW_COLUMNS, "ingested_at"],
        column_oriented=True,
    )
    rule = WatermarkRule(rules.lateness, rules.idle_partition_seconds)  # as `tokenshare store`
    writer = RawEventWriter(ch_client, database, watermark=rule)
    writer.load_marks()
    writer.write([rows(BUSY, 0, "2026-03-10T12:00:00Z")])  # the other one moves on

    def final_at_share_stage(day: date) -> bool:
        sums = load_day_sums(
            lambda sql: ch_client.query(sql).result_rows, database, rules.idle_partition_seconds
        )
        mark = ShareEngine(rules).tick(sums).watermark
        return is_final(
            Window(day - timedelta(days=6), day + timedelta(days=1), "rolling_7d"), mark
        )

    closed_if_idle, still_open = date(2026, 3, 5), date(2026, 3, 9)
    final = {d for d in (closed_if_idle, still_open) if final_at_share_stage(d)}
    assert final == ({closed_if_idle} if quiet_is_idle else set())

    writer.write([rows(BUSY, 1, "2026-03-05T08:00:00Z", "2026-03-09T23:00:00Z")])
    late = ch_client.query(f"SELECT day, rows FROM {database}.late_events").result_rows
    assert {d for d, _ in late} == final
    assert writer.stats.late == sum(n for _, n in late) == len(final)


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


def test_the_slowest_active_partition_sets_the_event_time() -> None:
    progress = [PartitionProgress(at(10), 1.0), PartitionProgress(at(8), 5.0)]
    assert event_time_reached(progress, idle_after_s=30) == at(8)


def test_an_idle_partition_is_left_out() -> None:
    progress = [PartitionProgress(at(10), 1.0), PartitionProgress(at(2), 3600.0)]
    assert event_time_reached(progress, idle_after_s=30) == at(10)
    assert event_time_reached(progress, idle_after_s=7200) == at(2)


def test_a_partition_with_a_backlog_is_never_idle() -> None:
    """Its worker was killed, or the store is catching up: its rows are on their way."""
    progress = [PartitionProgress(at(10), 1.0, 0), PartitionProgress(at(2), 3600.0, 1)]
    assert event_time_reached(with_backlog(progress, {1}), idle_after_s=30) == at(2)
    assert event_time_reached(with_backlog(progress, {0}), idle_after_s=30) == at(10)
    assert event_time_reached(with_backlog(progress, set()), idle_after_s=30) == at(10)


def test_when_all_are_idle_the_greatest_counts() -> None:
    progress = [PartitionProgress(at(10), 100.0), PartitionProgress(at(2), 3600.0)]
    assert event_time_reached(progress, idle_after_s=30) == at(10)


def test_no_rows_no_watermark() -> None:
    assert event_time_reached([], idle_after_s=30) is None
    assert WatermarkRule(timedelta(hours=24), 30).of([]) is None


def test_the_watermark_is_the_event_time_less_the_lateness() -> None:
    rule = WatermarkRule(timedelta(hours=24), 30)
    assert rule.of([PartitionProgress(at(10, 12), 0.0)]) == at(9, 12)
