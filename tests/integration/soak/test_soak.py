"""Soak: steady traffic through the real worker and store for minutes, watching for drift.

Why: the reliability suite proves no loss and no duplicates under faults, in
runs of seconds. What it cannot see is what only time shows: a consumer that
falls behind a little every minute, or a process whose memory grows with the
number of events it has seen (an unbounded cache, a per-event dict that is
never pruned). Either one is invisible in a short test and fatal in a week.

The run: TOKENSHARE_SOAK_SECONDS (default 600) of paced traffic at
TOKENSHARE_SOAK_RATE events/s (default 2,000) in JSON-array messages of
TOKENSHARE_SOAK_BATCH events (default 50), through the `pipeline` fixture of
tests/integration/conftest.py (found by pytest in the parent folder). Every 10 s: the
ingest and store consumer lag (`group_lag`, in messages) and the worker's and
the store's resident memory. At the end, after a 30 s warm-up is set aside:

- the ledger's check: every acknowledged event stored once, none unknown;
- lag bounded: the largest lag of each consumer group stays below what 10 s
  of traffic puts on its topic;
- memory bounded: the last sample of each process is within 1.3x of its
  first sample after the warm-up.

TOKENSHARE_SOAK_REPORT=1 (set by `make soak`) writes the samples to
tests/integration/soak/last_run.json; otherwise nothing is written, so CI never touches
tracked files.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from tests.factories import event
from tests.ledger import Ledger
from tests.pipeline import Pipeline
from tokenshare.streams.topics import group_lag

SECONDS = float(os.environ.get("TOKENSHARE_SOAK_SECONDS", "600"))
RATE = float(os.environ.get("TOKENSHARE_SOAK_RATE", "2000"))  # events per second
BATCH = int(os.environ.get("TOKENSHARE_SOAK_BATCH", "50"))  # events per message
WARM_UP = 30.0
EVERY = 10.0
LAG_WINDOW = 10.0  # lag must stay below this many seconds of traffic
RSS_GROWTH = 1.3
SEED = 6_000  # event ids ev-6000-<n>: distinct from every other test's
REPORT = Path(__file__).with_name("last_run.json")

pytestmark = pytest.mark.soak


@dataclass
class Sample:
    t: float  # seconds since traffic started
    sent: int
    acked: int
    ingest_lag: int | None  # events-topic messages the worker has not committed
    store_lag: int | None  # rows-topic messages the store has not committed
    rows_end: int  # rows-topic messages written so far (to turn lag into seconds)
    worker_rss_mb: float
    store_rss_mb: float


@dataclass
class Pacer:
    """Sends `RATE` events/s on an absolute schedule from a thread: a slow call
    (a sample, a GC pause) is caught up, so the average rate is the one asked."""

    ledger: Ledger
    seconds: float
    sent: int = 0
    error: BaseException | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float = 0.0

    def run(self) -> None:
        try:
            per_message = BATCH / RATE
            with self.ledger.producer() as producer:
                n = 0
                while (due := self.started + n * per_message) < self.started + self.seconds:
                    if (wait := due - time.monotonic()) > 0:
                        time.sleep(wait)
                    chunk = [event(self.sent + i, seed=SEED) for i in range(BATCH)]
                    self.ledger.send(producer, chunk, batch=BATCH)
                    self.sent += BATCH
                    n += 1
            self.finished = time.monotonic()
        except BaseException as exc:  # surfaced by the test thread
            self.error = exc


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (VmRSS, in kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def end_offsets(consumer: KafkaConsumer, topic: str) -> int:
    partitions = consumer.partitions_for_topic(topic) or set()
    ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
    return sum(int(v) for v in ends.values())


def verdict(samples: list[Sample], messages_per_s: float) -> dict[str, Any]:
    """Lag and memory after the warm-up, against their bounds."""
    steady = [s for s in samples if s.t >= WARM_UP]
    assert len(steady) >= 2, f"too few samples after the {WARM_UP:.0f} s warm-up: {samples}"
    first, last = steady[0], steady[-1]
    rows_per_s = (last.rows_end - first.rows_end) / max(last.t - first.t, 1e-9)
    lag_bound = {"ingest": LAG_WINDOW * messages_per_s, "store": LAG_WINDOW * rows_per_s}
    max_lag = {
        "ingest": max(s.ingest_lag if s.ingest_lag is not None else 10**12 for s in steady),
        "store": max(s.store_lag if s.store_lag is not None else 10**12 for s in steady),
    }
    rss = {
        name: {"after_warm_up": getattr(first, key), "last": getattr(last, key)}
        for name, key in (("worker", "worker_rss_mb"), ("store", "store_rss_mb"))
    }
    for value in rss.values():
        value["ratio"] = value["last"] / value["after_warm_up"]
    return {
        "max_lag_messages": max_lag,
        "lag_bound_messages": lag_bound,
        "lag_ok": all(max_lag[k] < lag_bound[k] for k in max_lag),
        "rss_mb": rss,
        "rss_bound_ratio": RSS_GROWTH,
        "rss_ok": all(v["ratio"] <= RSS_GROWTH for v in rss.values()),
    }


def summary(result: dict[str, Any]) -> str:
    v, f, r = result["verdict"], result["figures"], result["run"]
    lag, bound, rss = v["max_lag_messages"], v["lag_bound_messages"], v["rss_mb"]
    return "\n".join(
        [
            f"soak: {r['seconds']:.0f} s at {r['achieved_rate']:,.0f} events/s "
            f"(asked {RATE:,.0f}, {BATCH}/message), {len(result['samples'])} samples",
            f"  ledger: produced {f['produced']:,} acked {f['acked']:,} stored {f['stored']:,} "
            f"lost {f['lost']} duplicated {f['duplicated']} unknown {f['unknown']} "
            f"(drained in {r['drain_s']:.1f} s)",
            f"  max lag after warm-up: ingest {lag['ingest']} msgs (bound {bound['ingest']:.0f}), "
            f"store {lag['store']} msgs (bound {bound['store']:.0f})",
            *(
                f"  {name} RSS: {m['after_warm_up']:.0f} MB -> {m['last']:.0f} MB "
                f"(x{m['ratio']:.2f}, bound x{RSS_GROWTH})"
                for name, m in rss.items()
            ),
        ]
    )


@pytest.mark.timeout(SECONDS + 900)
def test_steady_load_keeps_lag_and_memory_bounded(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    s = pipeline.settings
    worker, store = pipeline.workers[0], pipeline.store
    ledger = Ledger(s)
    pacer = Pacer(ledger, SECONDS)
    thread = threading.Thread(target=pacer.run, name="soak-producer", daemon=True)
    offsets = KafkaConsumer(bootstrap_servers=s.kafka_bootstrap, **s.kafka_client_options())
    samples: list[Sample] = []
    try:
        pacer.started = time.monotonic()
        thread.start()
        for tick in range(1, int(SECONDS // EVERY) + 1):
            time.sleep(max(pacer.started + tick * EVERY - time.monotonic(), 0))
            if pacer.error is not None:
                break
            for proc, name in ((worker, "worker"), (store, "store")):
                assert proc.poll() is None, f"the {name} exited: {pipeline.logs()}"
            samples.append(
                Sample(
                    t=round(time.monotonic() - pacer.started, 1),
                    sent=pacer.sent,
                    acked=len(ledger.acked),
                    ingest_lag=group_lag(s, s.ingest_group, s.events_topic),
                    store_lag=group_lag(s, s.store_group, s.rows_topic),
                    rows_end=end_offsets(offsets, s.rows_topic),
                    worker_rss_mb=round(rss_mb(worker.pid), 1),
                    store_rss_mb=round(rss_mb(store.pid), 1),
                )
            )
        thread.join()
    finally:
        offsets.close()
    if pacer.error is not None:
        raise pacer.error
    produced_for = pacer.finished - pacer.started
    drain_start = time.monotonic()
    pipeline.wait_drained(300)
    drain_s = time.monotonic() - drain_start
    figures = ledger.figures()
    result: dict[str, Any] = {
        "run": {
            "seconds": SECONDS,
            "rate": RATE,
            "batch": BATCH,
            "partitions": s.partitions,
            "achieved_rate": pacer.sent / produced_for,
            "drain_s": drain_s,
            "warm_up_s": WARM_UP,
            "sample_every_s": EVERY,
        },
        "samples": [asdict(x) for x in samples],
        "verdict": verdict(samples, RATE / BATCH),
        "figures": figures.as_dict(),
    }
    if os.environ.get("TOKENSHARE_SOAK_REPORT") == "1":
        REPORT.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    with capsys.disabled():
        print("\n" + summary(result))

    ledger.check()
    assert result["run"]["achieved_rate"] >= 0.95 * RATE, "the producer did not keep the pace"
    v = result["verdict"]
    assert v["lag_ok"], f"consumer lag exceeded {LAG_WINDOW:.0f} s of traffic: {v}"
    assert v["rss_ok"], f"memory grew more than x{RSS_GROWTH} after warm-up: {v}"
