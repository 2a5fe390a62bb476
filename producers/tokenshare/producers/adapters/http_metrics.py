"""Prometheus metrics of `tokenshare ingest-http` (``GET /metrics``), with prometheus_client.

The endpoint's counters live once, in ``IngestStats`` (also served as JSON at
``/stats``); they are read when Prometheus scrapes. What ``IngestStats`` does not
hold, the responses by route and status and their durations, a middleware
records, once per request (a request carries a whole batch of events).

Series (all prefixed ``tokenshare_http_``):

- ``requests_total``, ``unauthorized_total``: POSTs, and those refused for the token;
- ``events_total{outcome}``: events ``accepted`` (acknowledged by Kafka) or ``rejected``;
- ``otlp_requests_total{signal}``: OTLP exports, ``traces`` or ``metrics``;
- ``spans_total``, ``spans_not_counted_total{reason}``: spans read, and those that
  became no event (``ignored``: not GenAI; ``skipped``: no usage; ``aggregate``:
  agent or tool span; ``rejected``: unusable);
- ``data_points_total``, ``data_points_not_counted_total{reason}``: points of
  ``gen_ai.client.token.usage``, refused ones (``rejected``) and points of other
  metrics (``other_metric``);
- ``kafka_messages_total``, ``kafka_failures_total``;
- ``responses_total{route, code}``, ``request_duration_seconds{route}``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series

#: Seconds; most of a request is waiting for Kafka's acknowledgement (acks=all).
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpMetrics:
    """The endpoint's registry: `read_stats` (IngestStats as a dict) read at
    scrape time, plus per-request responses and durations."""

    def __init__(self, read_stats: Callable[[], Mapping[str, int]]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_StatsCollector(read_stats))
        self.responses = Counter(
            "tokenshare_http_responses",
            "Responses by route and HTTP status.",
            ["route", "code"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "tokenshare_http_request_duration_seconds",
            "Time to answer a request (for a POST: until Kafka acknowledged it).",
            ["route"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        start = time.perf_counter()
        code = 500
        try:
            response = await handler(request)
            code = response.status
            return response
        except web.HTTPException as exc:
            code = exc.status
            raise
        finally:
            self.seconds.labels(route).observe(time.perf_counter() - start)
            self.responses.labels(route, str(code)).inc()

    async def handler(self, request: web.Request) -> web.Response:
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        response = web.Response(body=encode(self.registry))
        response.headers["Content-Type"] = content_type
        return response


class _StatsCollector(Collector):
    def __init__(self, read: Callable[[], Mapping[str, int]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        s = self.read()

        def counter(name: str, doc: str, value: int) -> CounterMetricFamily:
            return CounterMetricFamily(f"tokenshare_http_{name}", doc, value=value)

        def by(name: str, doc: str, label: str, values: dict[str, int]) -> CounterMetricFamily:
            family = CounterMetricFamily(f"tokenshare_http_{name}", doc, labels=[label])
            for key, value in values.items():
                family.add_metric([key], value)
            return family

        yield counter("requests", "POST requests received.", s["requests"])
        yield counter("unauthorized", "Requests refused for a missing or wrong token.",
                      s["unauthorized"])  # fmt: skip
        yield by("events", "Events accepted (acknowledged by Kafka) or rejected.", "outcome",
                 {"accepted": s["events_accepted"], "rejected": s["events_rejected"]})  # fmt: skip
        yield by("otlp_requests", "OTLP export requests by signal.", "signal",
                 {"traces": s["otlp_requests"], "metrics": s["otlp_metrics_requests"]})  # fmt: skip
        yield counter("spans", "OTLP spans read.", s["spans"])
        yield by("spans_not_counted", "OTLP spans that became no event, by reason.", "reason",
                 {"ignored": s["spans_ignored"], "skipped": s["spans_skipped"],
                  "aggregate": s["spans_aggregate"], "rejected": s["spans_rejected"]})  # fmt: skip
        yield counter("data_points", "gen_ai.client.token.usage data points read.",
                      s["data_points"])  # fmt: skip
        yield by("data_points_not_counted", "OTLP metric data points that became no event.",
                 "reason", {"rejected": s["data_points_rejected"],
                            "other_metric": s["data_points_ignored"]})  # fmt: skip
        yield counter("kafka_messages", "Messages Kafka acknowledged.", s["kafka_messages"])
        yield counter("kafka_failures", "Requests Kafka did not take (answered 503).",
                      s["kafka_failures"])  # fmt: skip
