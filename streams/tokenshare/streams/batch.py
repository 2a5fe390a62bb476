"""The per-batch work of a worker: decode, validate, enrich, split off the bad.

Pure functions over plain data (no Kafka, no Faust), so the hot path can be
tested and profiled on its own. Work is per message and per column, never
per event object beyond what validation needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tokenshare.schema.catalog import Catalog
from tokenshare.schema.dead_letter import DeadLetter
from tokenshare.schema.rows import ROW_COLUMNS, RowBatch
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


class Enricher:
    """Turns validated events of one source partition into columnar rows."""

    def __init__(self, catalog: Catalog, max_message_bytes: int) -> None:
        self.catalog = catalog
        self.max_message_bytes = max_message_bytes
        self._catalog_rows: dict[str, tuple[Any, ...]] = {}

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
            offsets: list[int] = []
            indexes: list[int] = []
            for msg, n in zip(msgs, run.counts, strict=True):
                offsets.extend([msg.offset] * n)
                indexes.extend(range(n))
            if offsets:
                columns = self._columns(topic, partition, run.columns, offsets, indexes)
                result.rows.append(RowBatch(topic, partition, columns))
        return result

    def _columns(
        self,
        topic: str,
        partition: int,
        fields: dict[str, list[Any]],
        offsets: list[int],
        indexes: list[int],
    ) -> dict[str, list[Any]]:
        """The decoded events' columns (`wire.decode_run`), enriched from the catalog."""
        n = len(offsets)
        rows = self._catalog_rows
        enriched = zip(*[rows.get(m) or self._catalog_row(m) for m in fields["model"]], strict=True)
        columns = {**fields, **dict(zip(_CATALOG_COLUMNS, map(list, enriched), strict=True))}
        columns["catalog_version"] = [self.catalog.version] * n
        columns["src_topic"] = [topic] * n
        columns["src_partition"] = [partition] * n
        columns["src_offset"] = offsets
        columns["src_index"] = indexes
        return {name: columns[name] for name in ROW_COLUMNS}

    def _catalog_row(self, slug: str) -> tuple[Any, ...]:
        """The catalog's columns for `slug`, remembered (the catalog bounds its own cache)."""
        info = self.catalog.lookup(slug)
        row = (
            info.model, info.author, info.lab, info.origin_country, info.origin_bloc,
            info.weights, info.size_class, info.reasoning, info.params_b, info.identified,
        )  # fmt: skip
        if len(self._catalog_rows) >= 100_000:  # a stream of made-up slugs must not grow it
            self._catalog_rows.clear()
        self._catalog_rows[slug] = row
        return row
