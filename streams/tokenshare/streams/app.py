"""The Faust app of a tokenshare worker.

Faust owns the worker's lifecycle (start, signals, graceful stop), the share
stage's agent and tables (``shares.agents``, ``shares.tables``: each worker
evaluates the dimensions of the rollup-changes partitions Faust assigns it), and
the web endpoint. The high-volume events topic is read by ``IngestService``
(see its module for why it does not go through a Faust stream).

Web endpoint (127.0.0.1:<worker_web_port>):
    /healthz  the process is alive;  /readyz  ingest is consuming (503 until then)
    /stats    ingest and share-stage counters (JSON)
    /shares   current shares of the open windows, of this worker's dimensions (JSON)
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
from tokenshare.streams.metrics import ShareCollector, exposition
from tokenshare.streams.shares.agents import install_share_agent
from tokenshare.streams.shares.engine import Query
from tokenshare.streams.shares.service import ShareService
from tokenshare.streams.shares.tables import share_tables

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
    tables = share_tables(app)
    tables.ensure_changelogs(settings)
    shares = ShareService(settings, query, tables)
    # Faust accepts service instances as well as classes here.
    app.service(ingest)  # type: ignore[arg-type]
    app.service(shares)  # type: ignore[arg-type]
    metrics = ingest.metrics.registry
    # 1 on a worker that evaluates some dimensions (every worker may).
    metrics.register(ShareCollector(shares, lambda: bool(shares.owned)))
    install_share_agent(app, settings, shares)

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
                        "skipped": shares.stats.skipped,
                        "reads": shares.stats.reads,
                        "keys": shares.keys(),
                        "evaluations": shares.stats.evaluations_by_key,
                        "ledger": sum(len(shares.tables.fired(p)) for p in shares.owned),
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
            return self.json(dict(shares.stats.current))  # a table view: a plain dict for JSON

    @app.page("/alerts")
    class Alerts(View):
        async def get(self, request: Request) -> Response:
            return self.json(list(shares.stats.recent_alerts))

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            ingest.metrics.lag.set(await ingest.lag())
            body, content_type = exposition(metrics, request.headers.get("Accept"))
            # As a header: aiohttp refuses a content_type argument holding a charset.
            return self.bytes(body, headers={"Content-Type": content_type})

    return app


def run_worker(settings: Settings, query: Query, loglevel: str = "warning") -> None:
    """Run a worker in this process until SIGTERM/SIGINT; `query` reads the store."""
    app = create_app(settings, query)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    tune_for_throughput()
    worker.execute_from_commandline()
