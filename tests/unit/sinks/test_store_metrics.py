"""The store's Prometheus metrics: one observation per flush, served on their own port."""

from __future__ import annotations

import socket
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tokenshare.processes import free_ports
from tokenshare.schema.rows import ROW_COLUMNS, RowBatch
from tokenshare.sinks.clickhouse import StoreError
from tokenshare.sinks.metrics import StoreMetrics


def rows(n: int, age_s: float) -> RowBatch:
    now_ms = int((time.time() - age_s) * 1000)
    columns: dict[str, list[object]] = {name: [0] * n for name in ROW_COLUMNS}
    columns["ts"] = [now_ms - 5_000] * (n - 1) + [now_ms]
    return RowBatch("events", 0, columns)  # type: ignore[arg-type]


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        s.name + "".join(f"[{k}={v}]" for k, v in sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_flush_is_counted_and_timed_and_served() -> None:
    metrics = StoreMetrics()
    unreadable = [0]
    metrics.count_from_loop(lambda: unreadable[0], lambda: 1)
    write = metrics.rows_writer(lambda batches: 7)  # 7 of the 10 rows were new
    assert write([rows(4, age_s=30), rows(6, age_s=2)]) == 7

    def broken(batches: list[RowBatch]) -> int:
        raise StoreError("ClickHouse away")

    with pytest.raises(StoreError):
        metrics.rows_writer(broken)([rows(1, 0)])
    alerts = metrics.writer("alerts", lambda items: None)
    alerts(["a", "b"])
    conflicted: list[object] = []
    metrics.conflicts_counter(conflicted.extend)([{"event_id": "x"}])
    unreadable[0] = 2

    [port] = free_ports(1)
    stop = metrics.serve("127.0.0.1", port)
    assert stop is not None
    try:
        got = scrape(f"http://127.0.0.1:{port}/metrics")
        # The port is now taken: a second store logs it and runs without metrics.
        assert StoreMetrics().serve("127.0.0.1", port) is None
    finally:
        stop()
    assert got["tokenshare_store_rows_total[outcome=stored]"] == 7
    assert got["tokenshare_store_rows_total[outcome=replayed]"] == 3
    assert got["tokenshare_store_write_failures_total[topic_kind=rows]"] == 1
    assert got["tokenshare_store_flush_duration_seconds_count[topic_kind=rows]"] == 1
    assert got["tokenshare_store_messages_total[topic_kind=alerts]"] == 2
    assert got["tokenshare_store_conflicts_total"] == 1 and conflicted == [{"event_id": "x"}]
    assert got["tokenshare_store_unreadable_total"] == 2
    assert got["tokenshare_store_resubscribed_total"] == 1
    # Freshness: the newest row of the flush (2 s old), once per flush; not the failed one.
    assert got["tokenshare_store_freshness_seconds_count"] == 1
    assert got["tokenshare_store_freshness_seconds_bucket[le=1.0]"] == 0
    assert got["tokenshare_store_freshness_seconds_bucket[le=5.0]"] == 1
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass  # stopped: nothing listens any more
