"""a. The limit: what a bare consumer loop reaches on this machine.

aiokafka `getmany`, `orjson.loads` per message, and a dict of token sums per
(author, UTC day): no validation, no enrichment, no output, no commits.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping

import orjson
from aiokafka import AIOKafkaConsumer

from tokenshare.bench.config import TITLES
from tokenshare.bench.cpu import RunCost
from tokenshare.bench.env import BenchEnv, Kind
from tokenshare.bench.report import Section, cost_figures


async def consume(bootstrap: str, topic: str, expected: int, timeout: float = 300) -> RunCost:
    """Events/s and CPU seconds (this process: the loop is its only work while it
    runs) from the first fetched record to the last event aggregated."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-limit-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        totals: dict[tuple[str, str], int] = {}
        seen = 0
        first: float | None = None
        cpu0 = 0.0
        deadline = time.monotonic() + timeout
        while seen < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the limit loop saw {seen:,} of {expected:,} events")
            batches = await consumer.getmany(timeout_ms=200, max_records=20_000)
            if batches and first is None:
                first, cpu0 = time.perf_counter(), time.process_time()
            for records in batches.values():
                for record in records:
                    doc = orjson.loads(record.value)
                    for e in doc if isinstance(doc, list) else (doc,):
                        key = (e["model"].split("/", 1)[0], e["ts"][:10])
                        totals[key] = (
                            totals.get(key, 0) + e["prompt_tokens"] + e["completion_tokens"]
                        )
                        seen += 1
        assert first is not None
        return RunCost(seen, time.perf_counter() - first, time.process_time() - cpu0)
    finally:
        await consumer.stop()


def measure(env: BenchEnv, done: Mapping[str, Section]) -> Section:
    section = Section("a", TITLES["a"])
    sizes = env.sizes
    kinds: tuple[tuple[Kind, int], ...] = (
        ("batched", sizes.events),
        ("single", sizes.single_events),
    )
    for kind, events in kinds:
        load = env.topic(kind, 1)
        runs: list[RunCost] = []
        for run in range(1, sizes.runs + 1):
            env.ui.step(f"a. raw limit, {kind} messages, run {run}/{sizes.runs}")
            runs.append(
                asyncio.run(consume(env.kafka.bootstrap, load.settings.events_topic, events))
            )
            env.ui.advance()
        per = sizes.of_kind(kind)[1]
        cost_figures(section, kind, f"raw loop, {per} ({events:,} events)", runs)
    section.ratio("batched / single messages", section.value("batched"), section.value("single"))
    section.notes.append(
        "a fresh consumer group per run, in the bench's own process; timed from the first "
        "fetched record to the last event; CPU is the process's time over the same span"
    )
    return section
