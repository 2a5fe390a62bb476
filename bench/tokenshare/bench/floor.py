"""The floors: consume + `insert_arrow`, one process, nothing else.

aiokafka `getmany`, `orjson.loads`, the catalog columns from a lookup per
model (cached), one Arrow table per flush (event `ts` parsed by Arrow, in C),
`insert_arrow` into an embedded chDB, then a commit. No validation, no
dead letters, no guards, no rows topic: what storing these rows costs on
this machine. `--table raw_events` writes tokenshare's own table (projection
and `daily_rollup` view included); `--table plain` a MergeTree with the same
written columns and nothing else. Arguments and result as in
`tokenshare.bench.peer_job`; run as `python -m tokenshare.bench.floor`.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import orjson
import pyarrow as pa
from aiokafka import AIOKafkaConsumer, TopicPartition

from tokenshare.bench.peer_job import Store, parse_args, write_result
from tokenshare.schema.catalog import Catalog
from tokenshare.schema.rows import ROW_COLUMNS

#: Columns the catalog fills, and the ModelInfo attribute each comes from.
CATALOG = {
    "model_canonical": "model", "author": "author", "lab": "lab",
    "origin_country": "origin_country", "origin_bloc": "origin_bloc", "weights": "weights",
    "size_class": "size_class", "reasoning": "reasoning", "params_b": "params_b",
    "identified": "identified",
}  # fmt: skip
SOURCE = ("catalog_version", "src_topic", "src_partition", "src_offset", "src_index")
EVENT = tuple(c for c in ROW_COLUMNS if c not in CATALOG and c not in SOURCE)


class Columns:
    """Rows of one flush, a list per column."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.cache: dict[str, tuple[Any, ...]] = {}
        self.reset()

    def reset(self) -> None:
        self.data: dict[str, list[Any]] = {name: [] for name in ROW_COLUMNS}
        self.rows = 0

    def add(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        doc = orjson.loads(value)
        events: list[dict[str, Any]] = doc if isinstance(doc, list) else [doc]
        data = self.data
        for name in EVENT:
            data[name].extend([e.get(name) for e in events])
        cache = self.cache
        enriched = zip(
            *[cache.get(m) or self._lookup(m) for m in data["model"][-len(events) :]], strict=True
        )
        for name, values in zip(CATALOG, enriched, strict=True):
            data[name].extend(values)
        n = len(events)
        data["catalog_version"].extend([self.catalog.version] * n)
        data["src_topic"].extend([topic] * n)
        data["src_partition"].extend([partition] * n)
        data["src_offset"].extend([offset] * n)
        data["src_index"].extend(range(n))
        self.rows += n

    def _lookup(self, slug: str) -> tuple[Any, ...]:
        info = self.catalog.lookup(slug)
        row = tuple(getattr(info, attr) for attr in CATALOG.values())
        self.cache[slug] = row
        return row

    def table(self) -> pa.Table:
        arrays = {name: pa.array(values) for name, values in self.data.items()}
        arrays["ts"] = arrays["ts"].cast(pa.timestamp("ms", tz="UTC"))
        return pa.table(arrays)


async def run(args: Any, store: Store, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    columns = Columns(Catalog.load())
    offsets: dict[TopicPartition, int] = {}
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
            for tp, records in batches.items():
                for record in records:
                    if record.value is not None:
                        columns.add(tp.topic, tp.partition, record.offset, record.value)
                offsets[tp] = records[-1].offset + 1
            if columns.rows >= args.flush_rows or (not batches and columns.rows):
                store.insert([columns.table()])
                columns.reset()
                await consumer.commit(dict(offsets))
    finally:
        await consumer.stop()


def main() -> None:
    args = parse_args(__doc__)
    store = Store(args.chdb, args.table)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(args, store, stop)

    asyncio.run(go())
    write_result(args.result, store)
    store.close()


if __name__ == "__main__":
    main()
