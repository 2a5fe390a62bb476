"""The store: reads the rows, alerts and shares topics, writes ClickHouse, then commits.

:func:`build_store` wires the roles, each in its own module:

- ``sinks.checkpoint``: the poll -> insert -> commit loop (its docstring states
  the checkpoint order everything relies on);
- the writers, one per table family, reached through :func:`routes` (topic ->
  decoder and writer): ``sinks.raw_events`` for rows, ``sinks.share_tables``
  for alerts and share snapshots;
- ``sinks.dead_letters``: rows refused as conflicting repeats, to the DLQ;
- ``sinks.query``: the read-only SQL endpoint.
- ``sinks.metrics``: Prometheus metrics, on ``store_metrics_port``.

In embedded mode exactly one store runs per data path (``sinks.owner``); with
a ClickHouse server, run as many as there are rows partitions to share.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from types import FrameType
from typing import Any, TypeVar

from clickhouse_connect.driver.client import Client

from tokenshare import kafka_clients
from tokenshare.schema.outputs import AlertMessage, ShareSnapshot
from tokenshare.schema.rows import RowBatch
from tokenshare.settings import Settings
from tokenshare.sinks.changes import ChangeNotices
from tokenshare.sinks.checkpoint import CheckpointLoop, Route
from tokenshare.sinks.clickhouse import StoreError, connect, migrate
from tokenshare.sinks.cluster import Cluster
from tokenshare.sinks.dead_letters import ConflictDeadLetters
from tokenshare.sinks.metrics import StoreMetrics
from tokenshare.sinks.owner import OwnerInfo, OwnerLock, data_path_of
from tokenshare.sinks.query import QueryServer
from tokenshare.sinks.raw_events import RawEventWriter
from tokenshare.sinks.reenrich import rebuild_rollups
from tokenshare.sinks.share_tables import write_alerts, write_snapshots
from tokenshare.watermark import WatermarkRule

T = TypeVar("T")

log = logging.getLogger("tokenshare.store")


class Store:
    """A running store: its loop and what it holds open. Run with `run()`."""

    def __init__(self, loop: CheckpointLoop, query_url: str, resources: ExitStack) -> None:
        self.loop = loop
        self.query_url = query_url
        self._resources = resources

    def run(self) -> None:
        """Poll, write, commit until stop() or SIGTERM; flushes, then closes."""
        try:
            self.loop.run()
        finally:
            self.close()

    def stop(self, *_: Any) -> None:
        self.loop.stop_event.set()

    def install_signal_handlers(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def close(self) -> None:
        self._resources.close()


def build_store(settings: Settings, watermark: WatermarkRule) -> Store:
    """A store ready to run; raises StoreBusy when another store owns the data path,
    or when another holder (a migration, an offline query) keeps it longer than
    ``store_lock_wait_s``.

    `watermark` is the share stage's rule (from its rules file), by which rows of
    days the share stage holds final are counted as late.
    """
    opened = ExitStack()  # what to close, in reverse order
    try:
        lock: OwnerLock | None = None
        if settings.embedded:
            lock = OwnerLock(data_path_of(settings.dsn))
            lock.acquire(wait_s=settings.store_lock_wait_s, on_wait=_waiting)
            opened.callback(lock.release)
        cluster = Cluster.of(settings)
        client = connect(settings.dsn, cluster=cluster)
        migrate(client, settings.clickhouse_database, cluster)
        if lock is not None and lock.crashed_at is not None and cluster is None:
            repair_after_crash(client, settings.clickhouse_database, lock.crashed_at)
        dead_letters = ConflictDeadLetters(
            kafka_clients.producer(settings, client_id=f"{settings.worker_id}-store-dlq"),
            settings.dlq_topic,
        )
        opened.callback(dead_letters.close)
        notices = ChangeNotices(  # after the inserts, before the commit (sinks.checkpoint)
            kafka_clients.producer(settings, client_id=f"{settings.worker_id}-store-changes"),
            settings.changes_topic,
            settings.rows_topic,
        )
        opened.callback(notices.close)
        metrics = StoreMetrics()
        writer = RawEventWriter(
            client,
            settings.clickhouse_database,
            watermark=watermark,
            on_conflicts=metrics.conflicts_counter(dead_letters),
            sole_writer=settings.embedded,  # one store per data path (sinks.owner)
        )
        writer.load_marks()
        server = QueryServer(settings)
        opened.callback(server.close)
        if lock is not None:
            lock.publish(server.url)
        consumer = kafka_clients.consumer(
            settings,
            group_id=settings.store_group,
            client_id=f"{settings.worker_id}-store",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=16 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
            max_poll_records=500,
            **kafka_clients.membership(settings, "store"),  # back in seconds after a restart
        )
        opened.callback(consumer.close, autocommit=False)
        topic_routes = routes(settings, client, writer, metrics)
        kafka_clients.wait_for_partitions(
            consumer, list(topic_routes), settings.kafka_startup_wait_s
        )
        loop = CheckpointLoop(
            consumer,
            topic_routes,
            group=settings.store_group,
            max_rows=settings.store_max_rows,
            max_wait_ms=settings.store_max_wait_ms,
            on_assigned=writer.load_marks,  # another store may have written them meanwhile
            announce=notices,
        )
        metrics.count_from_loop(lambda: loop.unreadable, lambda: loop.resubscribed)
        stop_metrics = metrics.serve(settings.store_metrics_bind, settings.store_metrics_port)
        if stop_metrics is not None:
            opened.callback(stop_metrics)
        return Store(loop, server.url, opened)
    except BaseException:
        opened.close()  # an error half-way: close what was opened so far
        raise


def _waiting(owner: OwnerInfo | None, waited_s: float, limit_s: float) -> None:
    who = owner.describe() if owner is not None else "another process"
    log.warning(
        "the embedded data path is held by %s; waiting for it (%.0f of %.0f s)",
        who,
        waited_s,
        limit_s,
    )


def repair_after_crash(client: Client, database: str, crashed_at: float) -> None:
    """Rebuild the rollup months of the rows the crashed owner stored.

    The engine died with its owner: an insert may have reached ``raw_events`` and
    not the views' tables, and the writer's guards skip those rows on replay, so
    the rollups would miss them for good. Rows stored since the dead owner last
    wrote its lock file (when it started serving) are the only candidates.
    """
    months = [
        int(m)
        for (m,) in client.query(
            f"SELECT DISTINCT toYYYYMM(day) FROM {database}.raw_events "
            "WHERE ingested_at >= fromUnixTimestamp64Milli({since:Int64})",
            parameters={"since": int((crashed_at - 60) * 1000)},
        ).result_rows
    ]
    tables = rebuild_rollups(client, database, months)
    log.warning(
        "the previous owner of the data path died holding it: rebuilt %s for months %s "
        "from the raw rows",
        ", ".join(tables) or "no rollup",
        ", ".join(map(str, months)) or "none",
    )


def routes(
    settings: Settings, client: Client, rows: RawEventWriter, metrics: StoreMetrics | None = None
) -> dict[str, Route[Any]]:
    """Topic -> decoder and writer; a flush writes them in this order, rows first."""
    db = settings.clickhouse_database
    m = metrics or StoreMetrics()  # each write timed and counted (sinks.metrics)
    return {
        settings.rows_topic: Route(RowBatch.decode, m.rows_writer(rows.write), size=len),
        settings.alerts_topic: Route(
            AlertMessage.decode, m.writer("alerts", _table(client, db, write_alerts))
        ),
        settings.shares_topic: Route(
            ShareSnapshot.decode, m.writer("shares", _table(client, db, write_snapshots))
        ),
    }


def _table(
    client: Client, database: str, write: Callable[[Client, str, Sequence[T]], None]
) -> Callable[[list[T]], None]:
    """A share-table writer that fails as the loop expects: with StoreError."""

    def store(items: list[T]) -> None:
        try:
            write(client, database, items)
        except Exception as exc:  # the driver's error types differ by backend
            raise StoreError(f"{write.__name__} failed: {exc}") from exc

    return store
