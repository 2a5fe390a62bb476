"""The idempotent writer: replays, repeated events and retried inserts store nothing twice."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import pytest
from clickhouse_connect.driver.client import Client

from tests.factories import event
from tokenshare.schema.catalog import Catalog
from tokenshare.schema.rows import RowBatch
from tokenshare.schema.wire import encode
from tokenshare.sinks.clickhouse import StoreError
from tokenshare.sinks.raw_events import RawEventWriter
from tokenshare.streams.batch import Enricher, SourceMessage
from tokenshare.watermark import WatermarkRule


@pytest.fixture(params=[False, True], ids=["lookup", "id-filter"])
def sole(request: pytest.FixtureRequest) -> bool:
    """Every guard holds with the event-id lookup alone and with the id filter."""
    return bool(request.param)


def rows(partition: int, offsets: range, seed: int = 0, per_message: int = 2) -> RowBatch:
    messages = [
        SourceMessage(
            "events",
            partition,
            o,
            encode([event(o * per_message + i, seed=seed) for i in range(per_message)]),
        )
        for o in offsets
    ]
    (batch,) = Enricher(Catalog.load(), 1 << 20).process(messages).rows
    return batch


def count(client: Client, database: str) -> int:
    return int(client.query(f"SELECT count() FROM {database}.raw_events").result_rows[0][0])


def test_replayed_offsets_are_skipped_by_the_high_water_mark(
    ch_client: Client, migrated: str, sole: bool
) -> None:
    writer = RawEventWriter(ch_client, migrated, sole_writer=sole)
    assert writer.write([rows(0, range(0, 10))]) == 20
    # A worker restart re-sends an overlapping range: only the new part is stored.
    assert writer.write([rows(0, range(5, 15))]) == 10
    assert writer.stats.replayed == 10
    # A new writer (store restart) reads the marks back from the table.
    fresh = RawEventWriter(ch_client, migrated, sole_writer=sole)
    fresh.load_marks()
    assert fresh.marks == {("events", 0): (14, 1)}
    assert fresh.write([rows(0, range(0, 15))]) == 0
    assert count(ch_client, migrated) == 30


def test_overlap_inside_one_write_call(ch_client: Client, migrated: str, sole: bool) -> None:
    writer = RawEventWriter(ch_client, migrated, sole_writer=sole)
    assert writer.write([rows(1, range(0, 10)), rows(1, range(5, 12))]) == 24
    assert count(ch_client, migrated) == 24


def test_same_events_at_new_offsets_are_dropped_by_event_id(
    ch_client: Client, migrated: str, sole: bool
) -> None:
    writer = RawEventWriter(ch_client, migrated, sole_writer=sole)
    writer.write([rows(0, range(0, 10))])
    # The same file replayed: same events, later offsets, another partition even.
    again = rows(3, range(0, 10))
    assert writer.write([again]) == 0
    assert writer.stats.duplicates == 20
    ids = ch_client.query(f"SELECT uniqExact(event_id), count() FROM {migrated}.raw_events")
    assert ids.result_rows[0] == (20, 20)


def test_retried_insert_is_deduplicated_by_token(
    ch_client: Client, migrated: str, sole: bool
) -> None:
    writer = RawEventWriter(ch_client, migrated, sole_writer=sole)
    batch = rows(0, range(0, 5))
    writer.write([batch])
    # The reply of the first insert was lost: the same insert is sent again verbatim.
    writer._insert(pa.Table.from_batches([batch.arrow]), "same-token")
    writer._insert(pa.Table.from_batches([batch.arrow]), "same-token")
    assert count(ch_client, migrated) == 20  # 10 first + 10 once for the token


def test_rows_of_closed_days_are_stored_and_reported_late(
    ch_client: Client, migrated: str, sole: bool
) -> None:
    from tests.factories import event as make

    rule = WatermarkRule(lateness=timedelta(hours=24), idle_after_s=30)
    writer = RawEventWriter(ch_client, migrated, sole_writer=sole, watermark=rule)

    def at(offset: int, ts: str) -> RowBatch:
        doc = make(offset, seed=7, ts=ts)
        (batch,) = (
            Enricher(Catalog.load(), 1 << 20)
            .process([SourceMessage("events", 0, offset, encode([doc]))])
            .rows
        )
        return batch

    writer.write([at(0, "2026-03-10T12:00:00Z")])  # watermark: 2026-03-09 12:00
    writer.write([at(1, "2026-03-09T23:00:00Z")])  # its day is still open: on time
    writer.write([at(2, "2026-03-07T08:00:00Z")])  # the 7th closed long ago: late
    assert writer.stats.late == 1
    late = ch_client.query(f"SELECT day, rows FROM {migrated}.late_events").result_rows
    assert [(str(d), n) for d, n in late] == [("2026-03-07", 1)]
    assert count(ch_client, migrated) == 3  # late rows are stored all the same
    # A restarted store reads the watermark from the table: the 8th is late for it too.
    restarted = RawEventWriter(ch_client, migrated, sole_writer=sole, watermark=rule)
    restarted.load_marks()
    restarted.write([at(3, "2026-03-08T08:00:00Z")])
    assert restarted.stats.late == 1


def test_same_id_with_other_figures_is_a_conflict_not_a_repeat(
    ch_client: Client, migrated: str, sole: bool
) -> None:
    from tests.factories import event as make

    refused: list[dict[str, object]] = []
    writer = RawEventWriter(ch_client, migrated, sole_writer=sole, on_conflicts=refused.extend)
    original = make(1, seed=9)

    def batch(offset: int, docs: list[dict[str, object]]) -> RowBatch:
        (rows_,) = (
            Enricher(Catalog.load(), 1 << 20)
            .process([SourceMessage("events", 0, offset, encode(docs))])
            .rows
        )
        return rows_

    writer.write([batch(0, [original])])
    forged = {**original, "prompt_tokens": int(str(original["prompt_tokens"])) + 1}
    # A stored id comes back with other figures; and a batch repeats an id with other figures.
    other = make(2, seed=9)
    assert writer.write([batch(1, [forged, original, other, {**other, "cost_usd": 9.0}])]) == 1
    assert [r["event_id"] for r in refused] == [original["event_id"], other["event_id"]]
    assert refused[0]["prompt_tokens"] == forged["prompt_tokens"]
    assert writer.stats.conflicts == 2 and writer.stats.duplicates == 1
    assert count(ch_client, migrated) == 2


def test_the_id_filter_spares_lookups_and_holds_across_a_restart(
    ch_client: Client, migrated: str
) -> None:
    writer = RawEventWriter(ch_client, migrated, sole_writer=True)
    assert writer.write([rows(0, range(0, 50))]) == 100
    assert writer.ids is not None and writer.ids.unsure == 0  # no lookup for new ids
    # A restarted store builds its filter from the table: the same events, sent
    # again at new offsets, are still found.
    restarted = RawEventWriter(ch_client, migrated, sole_writer=True)
    restarted.load_marks()
    assert restarted.write([rows(2, range(0, 50))]) == 0
    assert restarted.stats.duplicates == 100 and count(ch_client, migrated) == 100
    # New events next to them are stored.
    assert restarted.write([rows(2, range(50, 60), seed=1)]) == 20


ROLLUP_REQUESTS = {
    "daily_rollup": "SELECT sum(requests) FROM {db}.daily_rollup WHERE dimension = 'origin_bloc'",
    "segment_rollup": "SELECT sum(requests) FROM {db}.segment_rollup "
    "WHERE segment_dimension = '' AND dimension = 'origin_bloc'",
}


@pytest.mark.parametrize("failing", sorted(ROLLUP_REQUESTS))
def test_an_insert_that_failed_in_a_view_leaves_every_rollup_exact(
    ch_client: Client, migrated: str, sole: bool, failing: str
) -> None:
    """One insert writes raw_events and each materialized view's table, and a full disk
    can fail it after some of them took the rows. Whatever landed, the rows read again
    must end up once in raw_events and once in every rollup."""
    db = migrated
    # Every write into one view's table fails, as on a full disk.
    ch_client.command(f"ALTER TABLE {db}.{failing} ADD CONSTRAINT full_disk CHECK requests < 0")
    try:
        writer = RawEventWriter(ch_client, migrated, retries=0, sole_writer=sole)
        batch = rows(0, range(0, 10))
        with pytest.raises(StoreError):
            writer.write([batch])
        ch_client.command(f"ALTER TABLE {db}.{failing} DROP CONSTRAINT full_disk")
        writer.write([batch])  # the store reads the flush again
        writer.write([rows(0, range(0, 15))])  # and goes on
    finally:
        ch_client.command(f"ALTER TABLE {db}.{failing} DROP CONSTRAINT IF EXISTS full_disk")
    assert count(ch_client, db) == 30
    for table, sql in ROLLUP_REQUESTS.items():
        assert ch_client.query(sql.format(db=db)).result_rows[0][0] == 30, table
