"""The rows topic: validated, enriched events on their way to the store.

Workers write one message per source partition and batch, columnar, so that
the store inserts it into ClickHouse without touching individual rows. Column
names and order match ``raw_events`` (without its MATERIALIZED and DEFAULT
columns); a test checks them against the table.

Format 2 (written now) is an Arrow IPC stream: one record batch of
``ROW_SCHEMA``, with the version and the source topic and partition in the
schema's metadata. The store hands the batch to ClickHouse's Arrow input as
it is, so no Python object is made per value on the way in. Format 1 (a JSON
object with a list per column) is still read: messages written before an
upgrade stay on the topic for its retention.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

#: Columns a worker fills, in insert order. `ts` is epoch milliseconds (UTC).
ROW_COLUMNS: tuple[str, ...] = (
    "event_id", "ts", "model", "model_canonical", "provider",
    "prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens",
    "cache_creation_tokens", "cost_usd",
    "app_id", "user_id", "category", "region", "language",
    "tool_calls", "latency_ms", "finish_reason", "streamed",
    "author", "lab", "origin_country", "origin_bloc", "weights", "size_class", "reasoning",
    "params_b", "identified", "catalog_version",
    "src_topic", "src_partition", "src_offset", "src_index",
)  # fmt: skip

_NULLABLE = frozenset(
    ("app_id", "user_id", "category", "region", "language", "latency_ms", "finish_reason")
) | {"params_b"}
#: Arrow types of the columns, as ClickHouse's Arrow input maps them onto
#: raw_events. `params_b` travels as float64, like the JSON format's numbers, so
#: that a message reads back to the values it was built from (the table narrows it).
_TYPES: dict[str, pa.DataType] = {
    "ts": pa.timestamp("ms", tz="UTC"),
    "prompt_tokens": pa.uint32(),
    "completion_tokens": pa.uint32(),
    "reasoning_tokens": pa.uint32(),
    "cached_tokens": pa.uint32(),
    "cache_creation_tokens": pa.uint32(),
    "cost_usd": pa.float64(),
    "tool_calls": pa.uint16(),
    "latency_ms": pa.uint32(),
    "streamed": pa.bool_(),
    "params_b": pa.float64(),
    "identified": pa.bool_(),
    "src_partition": pa.uint32(),
    "src_offset": pa.uint64(),
    "src_index": pa.uint32(),
}
ROW_SCHEMA = pa.schema(
    [pa.field(n, _TYPES.get(n, pa.string()), nullable=n in _NULLABLE) for n in ROW_COLUMNS]
)

#: Columns added after a format was first written, with the value an older
#: worker's message stands for (messages stay on the topic across an upgrade).
LATER_COLUMNS: dict[str, int] = {"cache_creation_tokens": 0}

FORMAT_VERSION = 2
JSON_FORMAT_VERSION = 1


class RowBatch:
    """Rows of one source partition, in source order (offset, index ascending).

    Held either as column lists (built by a worker, or read from format 1) or as
    an Arrow record batch (read from format 2); each form is made from the other
    only when asked for. ``columns`` gives Python lists (``ts`` as epoch ms),
    column by column on first use; ``arrow`` the record batch the store inserts.
    """

    __slots__ = ("_arrow", "_lists", "src_partition", "src_topic")

    def __init__(
        self,
        src_topic: str,
        src_partition: int,
        columns: Mapping[str, list[Any]] | None = None,
        *,
        arrow: pa.RecordBatch | None = None,
    ) -> None:
        if (columns is None) == (arrow is None):
            raise TypeError("a RowBatch is made of column lists or of an Arrow batch")
        self.src_topic = src_topic
        self.src_partition = src_partition
        self._lists: Mapping[str, list[Any]] | None = columns
        self._arrow = arrow

    def __repr__(self) -> str:
        return f"RowBatch({self.src_topic!r}, {self.src_partition}, {len(self)} rows)"

    def __len__(self) -> int:
        if self._arrow is not None:
            return int(self._arrow.num_rows)
        assert self._lists is not None
        return len(self._lists["event_id"])

    @property
    def columns(self) -> Mapping[str, list[Any]]:
        if self._lists is None:
            assert self._arrow is not None
            self._lists = _ArrowColumns(self._arrow)
        return self._lists

    @property
    def arrow(self) -> pa.RecordBatch:
        if self._arrow is None:
            assert self._lists is not None
            lists = self._lists
            self._arrow = pa.RecordBatch.from_arrays(
                [pa.array(lists[f.name], type=f.type) for f in ROW_SCHEMA], schema=ROW_SCHEMA
            )
        return self._arrow

    def ts_range(self) -> tuple[int, int]:
        """The earliest and latest event time of a batch that has rows, in epoch ms."""
        if self._arrow is not None:
            bounds = pc.min_max(self._arrow.column("ts").cast(pa.int64()))
            return int(bounds["min"].as_py()), int(bounds["max"].as_py())
        ts = self.columns["ts"]
        return min(ts), max(ts)

    @property
    def first(self) -> tuple[int, int]:
        return self._position(0)

    @property
    def last(self) -> tuple[int, int]:
        return self._position(len(self) - 1)

    def _position(self, i: int) -> tuple[int, int]:
        if self._arrow is not None:
            batch = self._arrow
            return batch.column("src_offset")[i].as_py(), batch.column("src_index")[i].as_py()
        columns = self.columns
        return columns["src_offset"][i], columns["src_index"][i]

    def encode(self) -> bytes:
        meta = {
            "v": str(FORMAT_VERSION),
            "src_topic": self.src_topic,
            "src_partition": str(self.src_partition),
        }
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, ROW_SCHEMA.with_metadata(meta)) as writer:
            writer.write_batch(self.arrow)
        return bytes(sink.getvalue())

    @classmethod
    def decode(cls, value: bytes) -> RowBatch:
        """A rows message, either format; ValueError when it is neither."""
        if value[:1] == b"{":
            return cls._decode_json(value)
        try:
            reader = pa.ipc.open_stream(pa.py_buffer(value))
            meta = reader.schema.metadata or {}
            batches = list(reader)
        except pa.ArrowException as exc:
            raise ValueError(f"rows message is neither Arrow IPC nor JSON: {exc}") from exc
        if meta.get(b"v") != str(FORMAT_VERSION).encode():
            raise ValueError(f"rows message format {meta.get(b'v')!r}, expected {FORMAT_VERSION}")
        missing = set(ROW_COLUMNS) - set(reader.schema.names) - set(LATER_COLUMNS)
        if missing:
            raise ValueError(f"rows message lacks columns {sorted(missing)}")
        table = pa.Table.from_batches(batches, reader.schema)
        for name, default in LATER_COLUMNS.items():
            if name not in table.column_names:
                kind = ROW_SCHEMA.field(name).type
                table = table.append_column(
                    pa.field(name, kind, nullable=False),
                    pa.array([default] * table.num_rows, type=kind),
                )
        table = table.select(list(ROW_COLUMNS))
        batch = table.combine_chunks().to_batches()
        arrow = batch[0] if batch else ROW_SCHEMA.empty_table().to_batches()[0]
        if arrow.schema != ROW_SCHEMA:  # another worker version's types: the table's own
            arrow = arrow.cast(ROW_SCHEMA)
        return cls(meta[b"src_topic"].decode(), int(meta[b"src_partition"]), arrow=arrow)

    @classmethod
    def _decode_json(cls, value: bytes) -> RowBatch:
        doc = orjson.loads(value)
        if doc.get("v") != JSON_FORMAT_VERSION:
            raise ValueError(f"rows message format {doc.get('v')!r}, expected {FORMAT_VERSION}")
        columns = doc["columns"]
        missing = set(ROW_COLUMNS) - columns.keys() - set(LATER_COLUMNS)
        if missing:
            raise ValueError(f"rows message lacks columns {sorted(missing)}")
        for name, default in LATER_COLUMNS.items():
            columns.setdefault(name, [default] * len(columns["event_id"]))
        return cls(doc["src_topic"], doc["src_partition"], columns)

    def encode_json(self) -> bytes:
        """Format 1, as workers wrote it before format 2 (kept for the tests of reading it)."""
        return orjson.dumps(
            {
                "v": JSON_FORMAT_VERSION,
                "src_topic": self.src_topic,
                "src_partition": self.src_partition,
                "columns": dict(self.columns),
            }
        )

    def _slice(self, start: int, stop: int) -> RowBatch:
        if self._arrow is not None:
            return RowBatch(
                self.src_topic, self.src_partition, arrow=self._arrow.slice(start, stop - start)
            )
        return RowBatch(
            self.src_topic,
            self.src_partition,
            {name: values[start:stop] for name, values in self.columns.items()},
        )

    def chunks(self, size: int) -> Iterator[RowBatch]:
        """Consecutive pieces of at most `size` rows (one rows-topic message each)."""
        n = len(self)
        if n <= size:
            yield self
            return
        for start in range(0, n, size):
            yield self._slice(start, min(n, start + size))

    def slice_after(self, mark: tuple[int, int]) -> RowBatch:
        """The rows strictly after `mark` (offset, index): what a replay has not yet stored."""
        n = len(self)
        if n == 0 or self.first > mark:
            return self  # the usual case: nothing of it stored yet
        if self._arrow is not None:
            offsets = self._arrow.column("src_offset").to_numpy()
            indexes = self._arrow.column("src_index").to_numpy()
            # Rows ascend by (offset, index): those at or below the mark come first.
            start = int(
                np.count_nonzero(
                    (offsets < mark[0]) | ((offsets == mark[0]) & (indexes <= mark[1]))
                )
            )
        else:
            offsets, indexes = self.columns["src_offset"], self.columns["src_index"]
            start = 0
            while start < n and (offsets[start], indexes[start]) <= mark:
                start += 1
        return self._slice(start, n)


class _ArrowColumns(Mapping[str, list[Any]]):
    """Column lists of an Arrow batch, each made on first use (`ts` as epoch ms, as
    format 1 has it)."""

    __slots__ = ("_batch", "_made")

    def __init__(self, batch: pa.RecordBatch) -> None:
        self._batch = batch
        self._made: dict[str, list[Any]] = {}

    def __getitem__(self, name: str) -> list[Any]:
        made = self._made.get(name)
        if made is None:
            if name not in ROW_SCHEMA.names:
                raise KeyError(name)
            column = self._batch.column(name)
            if pa.types.is_timestamp(column.type):
                column = column.cast(pa.int64())
            made = self._made[name] = column.to_pylist()
        return made

    def __iter__(self) -> Iterator[str]:
        return iter(ROW_COLUMNS)

    def __len__(self) -> int:
        return len(ROW_COLUMNS)
