"""The store's Prometheus metrics, with prometheus_client, on a port of their own.

The store's writers stay unaware of metrics: :meth:`StoreMetrics.route` wraps
a route's writer, and one flush is one observation (never one per row).

Series (all prefixed ``tokenshare_store_``):

- ``rows_total{outcome}``: rows read from the rows topic, ``stored`` (new) or
  ``replayed`` (already stored, or refused as a conflicting repeat);
- ``conflicts_total``: rows refused because their event id was stored with
  other values (each also goes to the dead-letter topic);
- ``messages_total{topic_kind}``: alerts and share snapshots stored;
- ``flush_duration_seconds{topic_kind}``: one flush's write of one topic's
  messages (rows, alerts, shares);
- ``write_failures_total{topic_kind}``: flushes that failed and are re-read;
- ``freshness_seconds``: at each rows flush, the age of its newest event (event
  time to stored): how far behind live traffic the tables are;
- ``unreadable_total``: messages no writer could decode (a bug or a version skew);
- ``resubscribed_total``: times the consumer stopped fetching partitions it owns
  and subscribed again (``sinks.stall``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from tokenshare.schema.rows import RowBatch

log = logging.getLogger("tokenshare.store")

disable_created_metrics()  # type: ignore[no-untyped-call]  # see streams.metrics

T = TypeVar("T")

#: Seconds; an embedded insert of 200,000 rows takes about a second.
FLUSH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Seconds from event time to stored: live traffic is seconds behind, a replay days.
FRESHNESS_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 86400.0)


class StoreMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.rows = Counter(
            "tokenshare_store_rows",
            "Rows read from the rows topic: stored (new) or replayed (already stored).",
            ["outcome"],
            registry=r,
        )
        self.conflicts = Counter(
            "tokenshare_store_conflicts",
            "Rows refused: their event id is stored with other values (dead-lettered).",
            registry=r,
        )
        self.messages = Counter(
            "tokenshare_store_messages",
            "Alert and share-snapshot messages stored.",
            ["topic_kind"],
            registry=r,
        )
        self.flush_seconds = Histogram(
            "tokenshare_store_flush_duration_seconds",
            "Time to write one flush's messages of one topic.",
            ["topic_kind"],
            buckets=FLUSH_BUCKETS,
            registry=r,
        )
        self.failures = Counter(
            "tokenshare_store_write_failures",
            "Flushes that failed (nothing committed; read again after a pause).",
            ["topic_kind"],
            registry=r,
        )
        self.freshness = Histogram(
            "tokenshare_store_freshness_seconds",
            "At each rows flush, the age of its newest event when stored.",
            buckets=FRESHNESS_BUCKETS,
            registry=r,
        )

    def rows_writer(
        self, write: Callable[[list[RowBatch]], int]
    ) -> Callable[[list[RowBatch]], int]:
        """`write` (returns rows inserted), timed and counted per flush."""
        timer = self.flush_seconds.labels("rows")
        failures = self.failures.labels("rows")
        stored, replayed = self.rows.labels("stored"), self.rows.labels("replayed")

        def write_rows(batches: list[RowBatch]) -> int:
            start = time.perf_counter()
            try:
                inserted = write(batches)
            except Exception:
                failures.inc()
                raise
            timer.observe(time.perf_counter() - start)
            read = sum(len(b) for b in batches)
            stored.inc(inserted)
            replayed.inc(read - inserted)
            newest = max((b.ts_range()[1] for b in batches if len(b)), default=None)
            if newest is not None:
                self.freshness.observe(max(time.time() - newest / 1000, 0.0))
            return inserted

        return write_rows

    def writer(self, kind: str, write: Callable[[list[T]], object]) -> Callable[[list[T]], object]:
        """`write` of alerts or share snapshots, timed and counted per flush."""
        timer, failures = self.flush_seconds.labels(kind), self.failures.labels(kind)
        messages = self.messages.labels(kind)

        def write_messages(items: list[T]) -> object:
            start = time.perf_counter()
            try:
                result = write(items)
            except Exception:
                failures.inc()
                raise
            timer.observe(time.perf_counter() - start)
            messages.inc(len(items))
            return result

        return write_messages

    def conflicts_counter(
        self, on_conflicts: Callable[[Sequence[Any]], None]
    ) -> Callable[[Sequence[Any]], None]:
        """`on_conflicts` (which dead-letters the refused rows), counting them."""

        def counted(rows: Sequence[Any]) -> None:
            on_conflicts(rows)
            self.conflicts.inc(len(rows))

        return counted

    def count_from_loop(
        self, unreadable: Callable[[], int], resubscribed: Callable[[], int]
    ) -> None:
        """Export the counts the loop keeps itself: undecodable messages, and fresh
        subscriptions after a stall."""
        self.registry.register(
            _LoopCount(
                "tokenshare_store_unreadable",
                "Messages no writer could decode (a bug or a version skew); skipped.",
                unreadable,
            )
        )
        self.registry.register(
            _LoopCount(
                "tokenshare_store_resubscribed",
                "Times the Kafka consumer stopped fetching partitions it owns and "
                "subscribed again.",
                resubscribed,
            )
        )

    def serve(self, host: str, port: int) -> Callable[[], None] | None:
        """Serve /metrics on host:port in a thread; returns how to stop it, or None
        (logged) when the port is taken, since metrics must not keep the store down."""
        try:
            server, thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            log.warning(
                "store metrics not served on %s:%d (%s); set TOKENSHARE_STORE_METRICS_PORT "
                "to a free port",
                host,
                port,
                exc,
            )
            return None
        log.info("store metrics at http://%s:%d/metrics", host, server.server_port)

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

        return stop


class _LoopCount(Collector):
    """A counter the store's loop keeps itself, read at each scrape."""

    def __init__(self, name: str, documentation: str, read: Callable[[], int]) -> None:
        self.name, self.documentation, self.read = name, documentation, read

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.name, self.documentation, value=self.read())
