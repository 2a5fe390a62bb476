"""A burst of 10x the steady rate for a minute: lag and memory stay bounded, nothing
crashes, nothing is lost, and the catch-up time is reported.

Run by `make reliability` (an explicit path: this folder is not part of the
default run), which writes the figures to tests/RELIABILITY.md:

    steady TOKENSHARE_BURST_RATE events/s (default 1,000) for 20 s, then 10x that
    for 60 s, then steady again until both groups' lag is back to what steady
    traffic kept in flight before the burst (the catch-up time).

Bounds, checked every second from committed offsets and /proc:
- lag: never more than the burst's own extra traffic (what is produced beyond
  the steady rate), i.e. the pipeline never falls further behind than the burst;
- memory: each process's peak RSS within 2x of its steady-state RSS;
- the processes never exit; the ledger finds every acknowledged event stored once.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import pytest

from tests.integration.soak.test_soak import rss_mb
from tests.ledger import Ledger
from tests.pipeline import Pipeline
from tests.recovery import Offsets, SteadyLoad, drained_at
from tests.reliability_report import record

RATE = float(os.environ.get("TOKENSHARE_BURST_RATE", "1000"))
STEADY_S, BURST_S, FACTOR = 20.0, 60.0, 10
RSS_BOUND = 2.0


@dataclass
class Peak:
    lag: int = 0
    worker_rss_mb: float = 0.0
    store_rss_mb: float = 0.0


@pytest.mark.timeout(900)
def test_burst_of_ten_times_the_rate_for_a_minute(pipeline: Pipeline) -> None:
    s = pipeline.settings
    ledger = Ledger(s)
    peak = Peak()

    def sample(offsets: Offsets) -> None:
        lags = [
            offsets.lag(s.ingest_group, s.events_topic),
            offsets.lag(s.store_group, s.rows_topic),
        ]
        peak.lag = max(peak.lag, *(lag or 0 for lag in lags))
        peak.worker_rss_mb = max(peak.worker_rss_mb, rss_mb(pipeline.workers[0].pid))
        peak.store_rss_mb = max(peak.store_rss_mb, rss_mb(pipeline.store.pid))
        assert pipeline.store.poll() is None and pipeline.workers[0].poll() is None, pipeline.logs()

    def lag(offsets: Offsets) -> int:
        lags = [
            offsets.lag(s.ingest_group, s.events_topic),
            offsets.lag(s.store_group, s.rows_topic),
        ]
        return max(lag or 0 for lag in lags)

    with Offsets(s) as offsets, ledger.producer() as producer:
        with SteadyLoad(ledger, producer, rate=RATE, batch=50, seed=700):
            steady_lag = 0  # what steady traffic keeps in flight: "caught up" is back to it
            warm_until = time.monotonic() + STEADY_S
            while time.monotonic() < warm_until:
                steady_lag = max(steady_lag, lag(offsets))
                time.sleep(1)
            steady = (rss_mb(pipeline.workers[0].pid), rss_mb(pipeline.store.pid))
        burst_started = time.monotonic()
        with SteadyLoad(ledger, producer, rate=RATE * FACTOR, batch=50, seed=701) as burst:
            while time.monotonic() - burst_started < BURST_S:
                sample(offsets)
                time.sleep(1)
        burst_ended = time.monotonic()
        with SteadyLoad(ledger, producer, rate=RATE, batch=50, seed=702):
            while lag(offsets) > max(steady_lag, 1):
                sample(offsets)
                if time.monotonic() - burst_ended > 600:
                    raise TimeoutError(f"no catch-up 600 s after the burst: {peak}")
                time.sleep(1)
            caught_up = time.monotonic()
        drained_at(offsets, timeout=120)
    figures = ledger.check()
    extra_messages = burst.sent * (FACTOR - 1) // FACTOR // 50
    assert peak.lag <= max(extra_messages, 1), f"lag grew past the burst: {peak}"
    assert peak.worker_rss_mb <= RSS_BOUND * steady[0], f"worker memory: {peak}, {steady}"
    assert peak.store_rss_mb <= RSS_BOUND * steady[1], f"store memory: {peak}, {steady}"
    record(
        "burst: 10x the steady rate for a minute",
        f"{RATE:.0f} -> {RATE * FACTOR:.0f} events/s asked for {BURST_S:.0f} s, "
        f"{burst.sent / BURST_S:,.0f} events/s sent ({burst.sent} events); "
        f"peak lag {peak.lag} messages; peak RSS worker "
        f"{peak.worker_rss_mb:.0f} MB (steady {steady[0]:.0f}), store "
        f"{peak.store_rss_mb:.0f} MB (steady {steady[1]:.0f}); caught up "
        f"{caught_up - burst_ended:.1f} s after the burst",
        1,
        figures,
    )
