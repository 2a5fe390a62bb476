"""The Faust app of a tokenshare worker.

Faust owns the worker's lifecycle (start, signals, graceful stop), leader
election for the share stage (a leader timer), and the web endpoint. The
high-volume events topic is read by ``IngestService`` (see its module for why
it does not go through a Faust stream).

Web endpoint (127.0.0.1:<worker_web_port>):
    /healthz  the process is alive;  /readyz  ingest is consuming (503 until then)
    /stats    ingest and share-stage counters (JSON)
    /shares   current shares of the open windows (JSON)
    /alerts   the most recent alerts (JSON)
    /metrics  Prometheus text format

The app wires the worker's own parts; what lies outside streams comes in as
arguments: `query` reads the store (the `tokenshare worker` command passes the
store's read-only SQL).
"""

from __future__ import annotations

import logging

import faust
from faust.web import Request, Response, View

from tokenshare import kafka_clients
from tokenshare.gc_policy import tune_for_throughput
from tokenshare.logs import handler
from tokenshare.schema.catalog import Catalog
from tokenshare.settings import Settings
from tokenshare.streams.ingest import IngestService
from tokenshare.streams.metrics import render_metrics
from tokenshare.streams.shares.engine import Query
from tokenshare.streams.shares.service import ShareService

log = logging.getLogger("tokenshare.worker")


def create_app(settings: Settings, query: Query) -> faust.App:
    app = faust.App(
        settings.worker_id,
        **kafka_clients.faust_broker(settings),  # URL, credentials (SASL/TLS), acks=all
        datadir=str(settings.home / "faust"),
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        web_host="127.0.0.1",
        web_bind=settings.worker_web_bind,
        web_port=settings.worker_web_port,
        web_in_thread=False,
        key_serializer="raw",
        value_serializer="json",
        loghandlers=[handler("worker", settings.log_format)],
    )
    ingest = IngestService(settings, Catalog.load())
    shares = ShareService(settings, query)
    # Faust accepts service instances as well as classes here.
    app.service(ingest)  # type: ignore[arg-type]
    app.service(shares)  # type: ignore[arg-type]

    @app.timer(settings.shares_interval_s, on_leader=True)  # type: ignore[untyped-decorator]
    async def evaluate_shares() -> None:
        try:
            await shares.tick()
        except Exception:  # a failed tick is retried by the next; it must not stop ingest
            log.exception("share tick failed")

    @app.page("/stats")
    class Stats(View):
        async def get(self, request: Request) -> Response:
            return self.json(
                {
                    "ingest": ingest.stats.as_dict(),
                    "shares": {
                        "ticks": shares.stats.ticks,
                        "alerts": shares.stats.alerts,
                        "snapshots": shares.stats.snapshots,
                        "failed_ticks": shares.stats.failed_ticks,
                        "watermark": shares.stats.watermark,
                        "leader": app.is_leader(),
                    },
                    "webhook": {
                        "delivered": shares.webhook.stats.delivered,
                        "failed": shares.webhook.stats.failed,
                        "dropped": shares.webhook.stats.dropped,
                    },
                }
            )

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "alive"})

    @app.page("/readyz")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            ready = (
                ingest.consumer is not None
                and ingest.producer is not None
                and (ingest.stats.started > 0)
            )
            return self.json({"ready": ready}, status=200 if ready else 503)

    @app.page("/shares")
    class Shares(View):
        async def get(self, request: Request) -> Response:
            return self.json(shares.stats.current)

    @app.page("/alerts")
    class Alerts(View):
        async def get(self, request: Request) -> Response:
            return self.json(list(shares.stats.recent_alerts))

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            lag = await ingest.lag()
            return self.text(
                render_metrics(ingest.stats, shares.stats, lag),
                content_type="text/plain; version=0.0.4",
            )

    return app


def run_worker(settings: Settings, query: Query, loglevel: str = "warning") -> None:
    """Run a worker in this process until SIGTERM/SIGINT; `query` reads the store."""
    app = create_app(settings, query)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    tune_for_throughput()
    worker.execute_from_commandline()
