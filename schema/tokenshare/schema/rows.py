"""The rows topic: validated, enriched events on their way to the store.

Workers write one message per source partition and batch, columnar (a list
per column), so that the store inserts it into ClickHouse without touching
individual rows. Column names and order match ``raw_events`` (without its
MATERIALIZED and DEFAULT columns); a test checks them against the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

#: Columns a worker fills, in insert order. `ts` is epoch milliseconds (UTC).
ROW_COLUMNS: tuple[str, ...] = (
    "event_id", "ts", "model", "model_canonical", "provider",
    "prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens", "cost_usd",
    "app_id", "user_id", "category", "region", "language",
    "tool_calls", "latency_ms", "finish_reason", "streamed",
    "author", "lab", "origin_country", "origin_bloc", "weights", "size_class", "reasoning",
    "params_b", "identified", "catalog_version",
    "src_topic", "src_partition", "src_offset", "src_index",
)  # fmt: skip

FORMAT_VERSION = 1


@dataclass(slots=True)
class RowBatch:
    """Rows of one source partition, in source order (offset, index ascending)."""

    src_topic: str
    src_partition: int
    columns: dict[str, list[Any]]

    def __len__(self) -> int:
        return len(self.columns["event_id"])

    @property
    def first(self) -> tuple[int, int]:
        return self.columns["src_offset"][0], self.columns["src_index"][0]

    @property
    def last(self) -> tuple[int, int]:
        return self.columns["src_offset"][-1], self.columns["src_index"][-1]

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "v": FORMAT_VERSION,
                "src_topic": self.src_topic,
                "src_partition": self.src_partition,
                "columns": self.columns,
            }
        )

    @classmethod
    def decode(cls, value: bytes) -> RowBatch:
        doc = orjson.loads(value)
        if doc.get("v") != FORMAT_VERSION:
            raise ValueError(f"rows message format {doc.get('v')!r}, expected {FORMAT_VERSION}")
        columns = doc["columns"]
        missing = set(ROW_COLUMNS) - columns.keys()
        if missing:
            raise ValueError(f"rows message lacks columns {sorted(missing)}")
        return cls(doc["src_topic"], doc["src_partition"], columns)

    def chunks(self, size: int) -> Iterator[RowBatch]:
        """Consecutive pieces of at most `size` rows (one rows-topic message each)."""
        n = len(self)
        if n <= size:
            yield self
            return
        for start in range(0, n, size):
            yield RowBatch(
                self.src_topic,
                self.src_partition,
                {name: values[start : start + size] for name, values in self.columns.items()},
            )

    def slice_after(self, mark: tuple[int, int]) -> RowBatch:
        """The rows strictly after `mark` (offset, index): what a replay has not yet stored."""
        offsets, indexes = self.columns["src_offset"], self.columns["src_index"]
        start = 0
        while start < len(offsets) and (offsets[start], indexes[start]) <= mark:
            start += 1
        if start == 0:
            return self
        return RowBatch(
            self.src_topic,
            self.src_partition,
            {name: values[start:] for name, values in self.columns.items()},
        )
