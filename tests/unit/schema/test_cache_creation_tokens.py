"""Cache-creation tokens have a column of their own (migration 011): validated as a part
of prompt_tokens, carried by the rows topic, stored in raw_events; events and rows
messages written before the field read as 0."""

from __future__ import annotations

import orjson
import pyarrow as pa
from clickhouse_connect.driver.client import Client

from tests.factories import event
from tokenshare.schema.catalog import Catalog
from tokenshare.schema.rows import ROW_COLUMNS, RowBatch
from tokenshare.schema.wire import decode, encode
from tokenshare.streams.batch import Enricher, SourceMessage


def enriched(*events: dict[str, object]) -> RowBatch:
    result = Enricher(Catalog.load(), 1 << 20).process([SourceMessage("ev", 0, 7, encode(events))])
    assert not result.dead_letters, result.dead_letters
    (rows,) = result.rows
    return rows


def test_the_field_is_validated_as_a_part_of_the_prompt() -> None:
    old = event(1)
    old.pop("cache_creation_tokens", None)
    fine = event(2, prompt_tokens=5000, cached_tokens=1000, cache_creation_tokens=4000)
    over = event(3, prompt_tokens=5000, cached_tokens=1000, cache_creation_tokens=4001)
    valid, rejected = decode(orjson.dumps([old, fine, over]), 1 << 20)
    assert [e.cache_creation_tokens for e in valid] == [0, 4000]  # an old event: 0
    [refused] = rejected
    assert refused.index == 2 and "cache_creation_tokens" in refused.reason


def test_rows_carry_it_and_older_rows_messages_read_as_zero() -> None:
    rows = enriched(
        event(1, prompt_tokens=900, cached_tokens=0, cache_creation_tokens=300), event(2)
    )
    assert rows.columns["cache_creation_tokens"] == [300, 0]
    again = RowBatch.decode(rows.encode())
    assert again.columns["cache_creation_tokens"] == [300, 0]
    # A worker of the previous version wrote no such column (Arrow and JSON formats).
    old = rows.arrow.drop_columns(["cache_creation_tokens"])
    sink = pa.BufferOutputStream()
    meta = {"v": "2", "src_topic": "ev", "src_partition": "0"}
    with pa.ipc.new_stream(sink, old.schema.with_metadata(meta)) as writer:
        writer.write_batch(old)
    legacy = RowBatch.decode(bytes(sink.getvalue()))
    assert legacy.columns["cache_creation_tokens"] == [0, 0]
    assert tuple(legacy.arrow.schema.names) == ROW_COLUMNS
    doc = orjson.loads(rows.encode_json())
    del doc["columns"]["cache_creation_tokens"]
    assert RowBatch.decode(orjson.dumps(doc)).columns["cache_creation_tokens"] == [0, 0]


def test_the_column_is_stored(ch_client: Client, migrated: str) -> None:
    rows = enriched(event(1, prompt_tokens=900, cached_tokens=100, cache_creation_tokens=300))
    ch_client.insert_arrow(f"{migrated}.raw_events", pa.Table.from_batches([rows.arrow]))
    stored = ch_client.query(
        f"SELECT prompt_tokens, cached_tokens, cache_creation_tokens FROM {migrated}.raw_events"
    ).result_rows
    assert stored == [(900, 100, 300)]
    comment = ch_client.query(
        "SELECT type, default_kind FROM system.columns WHERE database = {db:String} "
        "AND table = 'raw_events' AND name = 'cache_creation_tokens'",
        parameters={"db": migrated},
    ).result_rows
    assert comment == [("UInt32", "")]  # filled by the worker, like the other counts
