"""The worker's Prometheus metrics, with prometheus_client.

Counters, not rates: Prometheus derives rates (``rate(tokenshare_events_total[5m])``)
and sums them across workers, which an in-process average cannot offer.

The hot path counts once per batch, never per event: ``IngestMetrics.record``
adds a batch's sums (one pass over three columns it already has, see
``token_sums``) and observes one batch duration. The share stage's numbers are
read when Prometheus scrapes (``ShareCollector``), so the share stage does not
know about metrics at all.

Series (all prefixed ``tokenshare_``):

- ``messages_total``, ``events_total``, ``dead_letters_total``: events-topic
  messages consumed, valid events forwarded, invalid inputs dead-lettered;
- ``tokens_total{model, provider, origin_bloc, kind}``: tokens of the forwarded
  events, ``kind`` ``prompt`` or ``completion``; ``model`` is the catalog's
  canonical name, ``unidentified`` for models the catalog does not know;
- ``batch_duration_seconds``: one events batch, decode to commit;
- ``consumer_lag``: events-topic messages not yet consumed by this worker;
- ``alerts_total``, ``share_ticks_total``, ``share_failed_ticks_total``,
  ``webhook_deliveries_total{outcome}``, ``share_leader``;
- ``share_ratio{window, dimension, value}``: token share (0-1) of each cohort
  in the open windows, from the share stage's leader only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from tokenshare.schema.catalog import UNIDENTIFIED
from tokenshare.schema.rows import RowBatch

if TYPE_CHECKING:
    from tokenshare.streams.shares.service import ShareService

# `_created` series double the number of series and say nothing a restart's
# reset of the counters does not already say.
disable_created_metrics()  # type: ignore[no-untyped-call]

#: Seconds; a batch of the default 20,000 records takes tens of milliseconds.
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Distinct (model, provider, origin_bloc) label sets before new ones are
#: counted as ``other``: a stream of made-up model or provider names must not
#: grow the series without bound.
MAX_TOKEN_SERIES = 2_000
OTHER = "other"

TokenKey = tuple[str, str, str]


class IngestMetrics:
    """The hot path's counters and histogram, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "tokenshare_messages", "Events-topic messages this worker consumed.", registry=r
        )
        self.events = Counter(
            "tokenshare_events", "Valid events this worker forwarded to the store.", registry=r
        )
        self.dead_letters = Counter(
            "tokenshare_dead_letters",
            "Invalid inputs this worker sent to the dead-letter topic.",
            registry=r,
        )
        self.tokens = Counter(
            "tokenshare_tokens",
            "Tokens of the events this worker forwarded, by catalog model, provider, "
            "origin bloc and kind (prompt or completion).",
            ["model", "provider", "origin_bloc", "kind"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "tokenshare_batch_duration_seconds",
            "Time of one events batch: decode, validate, enrich, produce, commit.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "tokenshare_consumer_lag",
            "Events-topic messages this worker's partitions have not yet consumed.",
            registry=r,
        )
        self._keys: set[TokenKey] = set()

    def record(
        self,
        messages: int,
        valid: int,
        dead_letters: int,
        rows: Sequence[RowBatch],
        *,
        seconds: float,
    ) -> None:
        """Count one forwarded batch (after its commit) that took `seconds`."""
        self.batch_seconds.observe(seconds)
        self.messages.inc(messages)
        self.events.inc(valid)
        self.dead_letters.inc(dead_letters)
        for key, (prompt, completion) in token_sums(rows).items():
            key = self._bounded(key)
            self.tokens.labels(*key, "prompt").inc(prompt)
            self.tokens.labels(*key, "completion").inc(completion)

    def _bounded(self, key: TokenKey) -> TokenKey:
        if key in self._keys:
            return key
        if len(self._keys) >= MAX_TOKEN_SERIES:
            return (OTHER, OTHER, OTHER)
        self._keys.add(key)
        return key


def token_sums(rows: Iterable[RowBatch]) -> dict[TokenKey, list[int]]:
    """(model, provider, origin_bloc) -> [prompt, completion] tokens of `rows`
    (grouped by Arrow, in C)."""
    sums: dict[TokenKey, list[int]] = {}
    for batch in rows:
        if not len(batch):
            continue
        arrow = batch.arrow
        canonical = arrow.column("model_canonical")
        model = pc.if_else(arrow.column("identified"), canonical, UNIDENTIFIED)
        table = pa.table(
            {
                "model": model,
                "provider": arrow.column("provider"),
                "origin_bloc": arrow.column("origin_bloc"),
                "prompt": arrow.column("prompt_tokens").cast(pa.int64()),
                "completion": arrow.column("completion_tokens").cast(pa.int64()),
            }
        )
        grouped = table.group_by(["model", "provider", "origin_bloc"], use_threads=False)
        for row in grouped.aggregate([("prompt", "sum"), ("completion", "sum")]).to_pylist():
            key = (row["model"], row["provider"], row["origin_bloc"])
            total = sums.setdefault(key, [0, 0])
            total[0] += row["prompt_sum"]
            total[1] += row["completion_sum"]
    return sums


class ShareCollector(Collector):
    """The share stage's numbers, read at scrape time."""

    def __init__(self, shares: ShareService, is_leader: Callable[[], bool]) -> None:
        self.shares = shares
        self.is_leader = is_leader

    def collect(self) -> Iterator[Metric]:
        stats = self.shares.stats
        yield CounterMetricFamily(
            "tokenshare_alerts", "Alerts this worker published (as leader).", value=stats.alerts
        )
        yield CounterMetricFamily(
            "tokenshare_share_ticks", "Share-stage evaluations run.", value=stats.ticks
        )
        yield CounterMetricFamily(
            "tokenshare_share_failed_ticks",
            "Share-stage evaluations that failed (the next one retries).",
            value=stats.failed_ticks,
        )
        hooks = self.shares.webhook.stats
        webhook = CounterMetricFamily(
            "tokenshare_webhook_deliveries",
            "Alert webhook deliveries by outcome (failed: gave up after retries; "
            "dropped: queue full).",
            labels=["outcome"],
        )
        webhook.add_metric(["delivered"], hooks.delivered)
        webhook.add_metric(["failed"], hooks.failed)
        webhook.add_metric(["dropped"], hooks.dropped)
        yield webhook
        yield GaugeMetricFamily(
            "tokenshare_share_leader",
            "1 on a worker that evaluates some share keys (rollup-changes partitions), else 0.",
            value=1 if self.is_leader() else 0,
        )
        ratio = GaugeMetricFamily(
            "tokenshare_share_ratio",
            "Token share (0-1) of each cohort in the open windows.",
            labels=["window", "dimension", "value"],
        )
        for snap in stats.current.values():
            if snap["measure"] != "tokens":
                continue
            for item in snap["values"]:
                ratio.add_metric(
                    [snap["window_kind"], snap["dimension"], item["value"]], item["share"]
                )
        yield ratio


def exposition(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The body and content type of a scrape: Prometheus text or OpenMetrics, as
    the scraper's Accept header asks."""
    encode, content_type = choose_encoder(accept or "")
    return encode(registry), content_type
