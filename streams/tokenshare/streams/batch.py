"""The per-batch work of a worker: decode, validate, enrich, split off the bad.

Pure functions over plain data (no Kafka, no Faust), so the hot path can be
tested and profiled on its own. Work is per message and per column, never
per event object beyond what validation needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from tokenshare.schema.catalog import Catalog
from tokenshare.schema.dead_letter import DeadLetter
from tokenshare.schema.rows import ROW_COLUMNS, ROW_SCHEMA, RowBatch
from tokenshare.schema.wire import decode_run


@dataclass(frozen=True, slots=True)
class SourceMessage:
    """The part of a consumed Kafka record the pipeline needs."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None


@dataclass(slots=True)
class BatchResult:
    rows: list[RowBatch] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    @property
    def valid(self) -> int:
        return sum(len(r) for r in self.rows)


#: The catalog's columns, in the order `_catalog_row` gives them.
_CATALOG_COLUMNS = (
    "model_canonical", "author", "lab", "origin_country", "origin_bloc",
    "weights", "size_class", "reasoning", "params_b", "identified",
)  # fmt: skip
_CATALOG_SCHEMA = pa.schema([ROW_SCHEMA.field(name) for name in _CATALOG_COLUMNS])
#: Slugs whose catalog rows are kept: a stream of made-up slugs must not grow them.
_SLUGS_KEPT = 100_000


class Enricher:
    """Turns validated events of one source partition into columnar rows (Arrow)."""

    def __init__(self, catalog: Catalog, max_message_bytes: int) -> None:
        self.catalog = catalog
        self.max_message_bytes = max_message_bytes
        self._catalog = _CatalogRows(catalog)

    def process(self, messages: Iterable[SourceMessage]) -> BatchResult:
        result = BatchResult()
        by_source: dict[tuple[str, int], list[SourceMessage]] = {}
        for msg in messages:
            by_source.setdefault((msg.topic, msg.partition), []).append(msg)
        for (topic, partition), msgs in by_source.items():
            run = decode_run([m.value for m in msgs], self.max_message_bytes)
            for pos, bad in run.rejected:
                msg = msgs[pos]
                result.dead_letters.append(
                    DeadLetter(
                        bad.original,
                        bad.reason,
                        topic=topic,
                        partition=partition,
                        offset=msg.offset,
                        index=bad.index,
                        key=msg.key,
                    )
                )
            counts = np.array(run.counts, dtype=np.int64)
            total = int(counts.sum())
            if total:
                # Each event's source offset, and its index within its message.
                offsets = np.repeat(np.array([m.offset for m in msgs], dtype=np.uint64), counts)
                starts = np.repeat(np.cumsum(counts) - counts, counts)
                indexes = (np.arange(total, dtype=np.int64) - starts).astype(np.uint32)
                batch = self._rows(topic, partition, run.columns, offsets, indexes)
                result.rows.append(RowBatch(topic, partition, arrow=batch))
        return result

    def _rows(
        self,
        topic: str,
        partition: int,
        fields: dict[str, list[Any]],
        offsets: NDArray[np.uint64],
        indexes: NDArray[np.uint32],
    ) -> pa.RecordBatch:
        """The decoded events' columns (`wire.decode_run`), enriched from the catalog,
        as one Arrow batch of ``ROW_SCHEMA``: each event column converted once, the
        catalog's columns taken by one index per event, constants repeated in C."""
        n = len(offsets)
        arrays: dict[str, pa.Array] = {
            name: pa.array(values, type=ROW_SCHEMA.field(name).type)
            for name, values in fields.items()
        }
        catalog = self._catalog.take(arrays["model"])
        for name in _CATALOG_COLUMNS:
            arrays[name] = catalog.column(name)
        arrays["catalog_version"] = pa.repeat(pa.scalar(self.catalog.version, pa.string()), n)
        arrays["src_topic"] = pa.repeat(pa.scalar(topic, pa.string()), n)
        arrays["src_partition"] = pa.repeat(pa.scalar(partition, pa.uint32()), n)
        arrays["src_offset"] = pa.array(offsets)
        arrays["src_index"] = pa.array(indexes)
        return pa.RecordBatch.from_arrays([arrays[name] for name in ROW_COLUMNS], schema=ROW_SCHEMA)


class _CatalogRows:
    """The catalog's columns of every slug seen so far, one Arrow row per slug, so
    that a batch's are one `take` (the catalog bounds its own lookup cache)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._clear()

    def _clear(self) -> None:
        self._slugs: list[str] = []
        self._rows: list[tuple[Any, ...]] = []
        self._arrow: tuple[pa.Array, pa.RecordBatch] | None = None  # (slugs, rows)

    def take(self, models: pa.Array) -> pa.RecordBatch:
        """The catalog's columns for each of `models`, in order."""
        slugs, rows = self._tables()
        positions = pc.index_in(models, value_set=slugs)
        if positions.null_count:  # slugs not seen before: look them up, then again
            unseen = pc.unique(pc.filter(models, pc.is_null(positions))).to_pylist()
            if len(self._slugs) + len(unseen) > _SLUGS_KEPT:
                self._clear()
                unseen = pc.unique(models).to_pylist()
            for slug in unseen:
                self._add(slug)
            slugs, rows = self._tables()
            positions = pc.index_in(models, value_set=slugs)
        return rows.take(positions)

    def _add(self, slug: str) -> None:
        info = self.catalog.lookup(slug)
        self._slugs.append(slug)
        row = (
            info.model, info.author, info.lab, info.origin_country, info.origin_bloc,
            info.weights, info.size_class, info.reasoning, info.params_b, info.identified,
        )  # fmt: skip
        self._rows.append(row)
        self._arrow = None

    def _tables(self) -> tuple[pa.Array, pa.RecordBatch]:
        if self._arrow is None:
            columns: list[Sequence[Any]] = [[] for _ in _CATALOG_COLUMNS]
            if self._rows:
                columns = list(zip(*self._rows, strict=True))
            rows = pa.RecordBatch.from_arrays(
                [pa.array(c, type=f.type) for c, f in zip(columns, _CATALOG_SCHEMA, strict=True)],
                schema=_CATALOG_SCHEMA,
            )
            self._arrow = (pa.array(self._slugs, type=pa.string()), rows)
        return self._arrow
