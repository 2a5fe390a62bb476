"""f. Freshness: at a fixed offered load, time from send to visible in ClickHouse.

A paced producer offers `fresh_rate` events/s in messages of `fresh_batch`
for `fresh_seconds`. Some messages carry a marker event (known id, its own
region label and day); the bench polls the store for them, by id in
raw_events (through its event-id projection) and by label in daily_rollup
(filled by the materialized view in the same insert), and records when each
became visible.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from tokenshare.bench.config import TITLES
from tokenshare.bench.env import BenchEnv
from tokenshare.bench.pipeline import Pipeline
from tokenshare.bench.report import Figure, Section
from tokenshare.processes import wait_until
from tokenshare.producers.kafka_producer import EventProducer
from tokenshare.sinks.query import run_query

MARKER_DAY = "2026-05-04"
MARKER_TS = f"{MARKER_DAY}T12:00:00.000Z"
POLL_S = 0.05


@dataclass(slots=True)
class Plan:
    messages: list[bytes]
    markers: dict[int, str]  # message index -> marker id
    warmup: int  # events in message 0, sent before the clock starts


@dataclass(slots=True)
class Sent:
    at: dict[str, float] = field(default_factory=dict)  # marker id -> monotonic send time
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: float = 0.0
    finished: float = 0.0
    events: int = 0
    behind_s: float = 0.0  # worst lag behind the pacing schedule


def marker_id(k: int) -> str:
    return f"bench-mark-{k:06d}"


def plan(env: BenchEnv) -> Plan:
    sizes = env.sizes
    events = env.events
    base = events.batched(sizes.fresh_batch)
    chunks = events.chunks(sizes.fresh_batch)
    total = 1 + round(sizes.fresh_rate * sizes.fresh_seconds / sizes.fresh_batch)
    every = max(1, round(sizes.fresh_rate / sizes.fresh_batch / sizes.markers_per_s))
    messages: list[bytes] = []
    markers: dict[int, str] = {}
    for i in range(total):
        round_no, at = divmod(i, len(base))
        if i > 0 and i % every == 0:
            k = len(markers)
            chunk: list[dict[str, Any]] = list(chunks[at])
            chunk[0] = {
                **chunk[0],
                "event_id": marker_id(k),
                "region": f"bmark-{k:06d}",
                "ts": MARKER_TS,
            }
            messages.append(events.relabel(orjson.dumps(chunk), round_no))
            markers[i] = marker_id(k)
        else:
            messages.append(events.relabel(base[at], round_no))
    return Plan(messages, markers, warmup=len(chunks[0]))


def send_paced(env: BenchEnv, producer: EventProducer, p: Plan, sent: Sent) -> None:
    sizes = env.sizes
    interval = sizes.fresh_batch / sizes.fresh_rate
    sent.started = time.perf_counter()
    for i, value in enumerate(p.messages[1:], start=1):
        due = sent.started + (i - 1) * interval
        ahead = due - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
        else:
            sent.behind_s = max(sent.behind_s, -ahead)
        if i in p.markers:
            with sent.lock:
                sent.at[p.markers[i]] = time.monotonic()
        producer.send_raw(value)
        sent.events += sizes.fresh_batch
    sent.finished = time.perf_counter()
    producer.flush()


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0-100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def poll(pipeline: Pipeline, sent: Sent, sender: threading.Thread) -> tuple[dict[str, float], ...]:
    """When each marker was first seen in raw_events and in daily_rollup (monotonic)."""
    settings = pipeline.settings
    db = settings.clickhouse_database
    raw_seen: dict[str, float] = {}
    rollup_seen: dict[str, float] = {}
    deadline: float | None = None
    while True:
        with sent.lock:
            known = list(sent.at)
        if not sender.is_alive():
            deadline = deadline or time.monotonic() + 60
            if len(raw_seen) == len(rollup_seen) == len(known) or time.monotonic() > deadline:
                return raw_seen, rollup_seen
        pipeline.check()
        pending = [m for m in known if m not in raw_seen]
        if pending:
            rows = run_query(
                settings,
                f"SELECT event_id FROM {db}.raw_events WHERE day = toDate({{d:String}}) "
                "AND id_hash IN (SELECT cityHash64(arrayJoin({ids:Array(String)})))",
                {"d": MARKER_DAY, "ids": pending},
            ).rows
            now = time.monotonic()
            for (eid,) in rows:
                raw_seen.setdefault(str(eid), now)
        pending = [f"bmark-{m[-6:]}" for m in known if m not in rollup_seen]
        if pending:
            rows = run_query(
                settings,
                f"SELECT DISTINCT value FROM {db}.daily_rollup WHERE dimension = 'region' "
                "AND day = toDate({d:String}) AND has({vals:Array(String)}, value)",
                {"d": MARKER_DAY, "vals": pending},
            ).rows
            now = time.monotonic()
            for (value,) in rows:
                rollup_seen.setdefault(marker_id(int(str(value)[-6:])), now)
        time.sleep(POLL_S)


def measure(env: BenchEnv, done: Mapping[str, Section]) -> Section:
    sizes = env.sizes
    section = Section("f", f"{TITLES['f']} ({sizes.fresh_rate:,} events/s offered)")
    env.ui.step("f. freshness: preparing messages")
    p = plan(env)
    settings = env.settings("fresh")
    with Pipeline(env, settings, "f-fresh") as pipeline:
        env.ui.step("f. freshness: starting store and worker")
        pipeline.start_store()
        pipeline.start_worker()
        with EventProducer(settings) as producer:
            producer.send_raw(p.messages[0])  # warm-up: the pipeline is live before the clock
            producer.flush()
            wait_until(lambda: pipeline.count() >= p.warmup, 120, "the warm-up events", 0.1)
            env.ui.step(
                f"f. freshness: {sizes.fresh_rate:,} events/s for {sizes.fresh_seconds:.0f} s"
            )
            sent = Sent()
            sender = threading.Thread(
                target=send_paced, args=(env, producer, p, sent), name="paced", daemon=True
            )
            sender.start()
            raw_seen, rollup_seen = poll(pipeline, sent, sender)
            sender.join()
        stored = pipeline.count()
    env.ui.advance()
    raw = [raw_seen[m] - t for m, t in sent.at.items() if m in raw_seen]
    rollup = [rollup_seen[m] - t for m, t in sent.at.items() if m in rollup_seen]
    offered = sent.events / max(sent.finished - sent.started, 1e-9)
    section.add(
        "offered", Figure("offered load achieved by the paced producer", offered, "events/s")
    )
    section.add("markers", Figure("markers sent", float(len(sent.at)), "events"))
    for key, label, values in (("raw", "raw_events", raw), ("rollup", "daily_rollup", rollup)):
        section.add(
            f"{key}_p50", Figure(f"send to visible in {label}, p50", percentile(values, 50), "s")
        )
        section.add(
            f"{key}_p99", Figure(f"send to visible in {label}, p99", percentile(values, 99), "s")
        )
        section.add(
            f"{key}_max", Figure(f"send to visible in {label}, max", max(values, default=None), "s")
        )
    missing = len(sent.at) - min(len(raw), len(rollup))
    section.notes.append(
        f"{sent.events + p.warmup:,} events sent ({sizes.fresh_batch} per message), "
        f"{stored:,} stored when the run ended; {len(sent.at)} markers "
        f"({sizes.markers_per_s}/s), {missing} not seen within 60 s of the last send; "
        f"the producer was at worst {sent.behind_s * 1000:.0f} ms behind its schedule"
    )
    section.notes.append(
        f"visibility polled every {POLL_S * 1000:.0f} ms through the store's read-only SQL "
        "endpoint; a marker counts as visible when the query that saw it returned"
    )
    return section
