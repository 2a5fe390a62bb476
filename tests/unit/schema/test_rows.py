"""The rows topic contract: columnar batches, replay slicing, and the table's columns."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.client import Client

from tests.factories import event
from tokenshare.schema.catalog import Catalog
from tokenshare.schema.rows import ROW_COLUMNS, ROW_SCHEMA, RowBatch
from tokenshare.schema.wire import encode
from tokenshare.streams import batch
from tokenshare.streams.batch import Enricher, SourceMessage


def batch_of(n: int, per_message: int = 3) -> RowBatch:
    messages = [
        SourceMessage(
            "ev", 2, offset, encode([event(offset * per_message + i) for i in range(per_message)])
        )
        for offset in range(n)
    ]
    result = Enricher(Catalog.load(), 1 << 20).process(messages)
    (rows,) = result.rows
    return rows


def test_enricher_fills_every_column_in_source_order() -> None:
    rows = batch_of(4)
    assert set(rows.columns) == set(ROW_COLUMNS)
    assert len(rows) == 12
    positions = list(zip(rows.columns["src_offset"], rows.columns["src_index"], strict=True))
    assert positions == sorted(positions) and positions[0] == (0, 0) and rows.last == (3, 2)
    assert all(len(v) == 12 for v in rows.columns.values())


def test_encode_decode_and_slice_after() -> None:
    rows = batch_of(4)
    again = RowBatch.decode(rows.encode())
    assert again.columns == rows.columns
    rest = again.slice_after((1, 1))
    assert rest.first == (1, 2) and len(rest) == 12 - 5
    assert len(again.slice_after((9, 0))) == 0
    assert again.slice_after((-1, -1)) is again


def test_chunks_cover_all_rows_in_order() -> None:
    rows = batch_of(10)
    pieces = list(rows.chunks(7))
    assert [len(p) for p in pieces] == [7, 7, 7, 7, 2]
    assert [e for p in pieces for e in p.columns["event_id"]] == rows.columns["event_id"]


def test_row_columns_match_the_raw_events_table(ch_client: Client, migrated: str) -> None:
    described = ch_client.query(f"DESCRIBE TABLE {migrated}.raw_events").result_rows
    insertable = [r[0] for r in described if r[2] not in ("MATERIALIZED", "DEFAULT", "ALIAS")]
    assert tuple(insertable) == ROW_COLUMNS


def test_rows_travel_as_arrow_and_format_1_json_is_still_read() -> None:
    rows = batch_of(4)
    value = rows.encode()
    assert value[:4] == b"\xff\xff\xff\xff"  # an Arrow IPC stream
    again = RowBatch.decode(value)
    assert again.arrow.schema == ROW_SCHEMA and again.arrow.num_rows == 12
    assert (again.src_topic, again.src_partition) == ("ev", 2)
    # A message a worker wrote before format 2, still on the topic after an upgrade.
    old = RowBatch.decode(rows.encode_json())
    assert old.columns == rows.columns and old.arrow.equals(again.arrow)


def test_arrow_batches_slice_and_chunk_without_lists() -> None:
    rows = RowBatch.decode(batch_of(10).encode())
    rest = rows.slice_after((3, 1))
    assert rest.first == (3, 2) and rest.last == (9, 2) and len(rest) == 30 - 11
    assert [len(p) for p in rows.chunks(7)] == [7, 7, 7, 7, 2]
    pieces = [RowBatch.decode(p.encode()) for p in rows.chunks(7)]
    assert [e for p in pieces for e in p.columns["event_id"]] == rows.columns["event_id"]


@pytest.mark.parametrize(
    "value",
    [b"", b"\xff\xff\xff\xff garbage", b'{"v": 9, "columns": {}}', b"\x00\x01"],
    ids=["empty", "broken-arrow", "json-v9", "bytes"],
)
def test_unreadable_messages_raise_value_error(value: bytes) -> None:
    with pytest.raises(ValueError):
        RowBatch.decode(value)


def test_enricher_takes_each_models_catalog_columns_and_bounds_the_slugs_it_keeps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalog = Catalog.load()
    known = catalog.slugs()[:3]
    monkeypatch.setattr(batch, "_SLUGS_KEPT", 5)  # the second message overflows it
    enricher = Enricher(catalog, 1 << 20)
    for offset in range(2):
        slugs = [*known, f"nobody/made-up-{offset}", known[0], "nobody/other", known[1]]
        events = [{**event(offset * 10 + i), "model": slug} for i, slug in enumerate(slugs)]
        (rows,) = enricher.process([SourceMessage("ev", 0, offset, encode(events))]).rows
        for i, slug in enumerate(slugs):
            info = catalog.lookup(slug)
            assert rows.columns["model_canonical"][i] == info.model
            assert rows.columns["origin_bloc"][i] == info.origin_bloc
            assert rows.columns["params_b"][i] == info.params_b
            assert rows.columns["identified"][i] is info.identified
    assert not catalog.lookup("nobody/made-up-1").identified
    assert sorted(enricher._catalog._slugs) == sorted(set(slugs))  # cleared: this batch's only
