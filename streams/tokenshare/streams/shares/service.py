"""The share stage inside a worker: evaluates its own evaluation keys, when told to.

The store announces each flush on the rollup-changes topic (``schema.changes``:
one partition per dimension). The share agent (``agents``) hands each notice of
the partitions Faust assigned to this worker to :meth:`ShareService.evaluate`:

    read day sums  ->  evaluate the partition's keys  ->  publish new alerts,
    wait for acks  ->  ledger table  ->  snapshots: shares topic, current table

A partition stands for some of the rules' evaluation keys (a dimension, or a
name such as ``catalog_gap``; ``RulesConfig.keys``): the engine evaluates only
the rules under them (``ShareEngine.tick(keys=...)``) and snapshots only the
dimensions among them. So every worker evaluates a share of the keys, and a key
is evaluated by one worker at a time. Nothing is read on a timer: the timer here
only sends this worker's own notices, a "takeover" for each partition it is
given, and a "recheck" when an idle source partition may let the watermark move
with no new row (``tokenshare.watermark``).

No alert fires twice: an alert is fired once the broker acknowledged it, and
the ledger table records it after that. A kill -9 between the two loses the
table entry, so on taking a partition over (a restart or a rebalance) the
worker also reads the alerts topic (from where it last stopped): the engine
that takes over knows the ids of both. None is lost: a notice repeated by a
crash only evaluates again, and a takeover evaluates at once.

The day sums come from the store through `query` (read-only SQL -> rows): the
worker's composition root passes the store's reader in, so the share stage
knows no sink. Only the dimensions this worker's keys read are loaded, and one
read serves every notice of the same flush (they carry its id; the notices a
worker sends itself together share one too), however many partitions they reach.
Reads are at least `shares_min_interval_s` apart; a notice that comes sooner is
answered by a recheck once that has passed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.exceptions import PartitionsMismatch
from mode import Service

from tokenshare import kafka_clients
from tokenshare.schema.changes import ChangeReason, RollupChange, partition_of
from tokenshare.schema.vocabulary import DIMENSIONS
from tokenshare.settings import Settings
from tokenshare.streams.shares.backlog import Backlog
from tokenshare.streams.shares.config import load_rules
from tokenshare.streams.shares.delivery import Delivery
from tokenshare.streams.shares.engine import Query, ShareEngine, TickResult, load_day_sums
from tokenshare.streams.shares.tables import OwnedShares, ShareTables
from tokenshare.streams.shares.windows import DaySums
from tokenshare.watermark import (
    PartitionProgress,
    event_time_reached,
    read_progress,
    with_backlog,
)

log = logging.getLogger("tokenshare.shares")

#: After a failed evaluation (store unreachable), try the partition again this much later.
RETRY_S = 2.0
#: At most this long after the first rows, evaluation waits for rows of every source
#: partition (the first flushes may hold some partitions only).
SOURCES_WAIT_S = 3.0
#: Flush ids remembered to share reads between the notices of one flush.
_FLUSHES_KEPT = 1024


@dataclass(slots=True)
class ShareStats:
    ticks: int = 0  # evaluations of one partition's keys
    alerts: int = 0
    snapshots: int = 0
    failed_ticks: int = 0
    skipped: int = 0  # notices with a newer one behind them in their partition
    table_refusals: int = 0  # table writes Faust refused (see ShareService._write_table)
    reads: int = 0  # day-sum reads (one serves every notice of a flush)
    deferred: int = 0  # notices put off to keep reads shares_min_interval_s apart
    last_tick_s: float = 0.0
    watermark: str | None = None
    evaluations_by_key: dict[str, int] = field(default_factory=dict)
    recent_alerts: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=100))
    #: latest snapshot per key, of the dimensions this worker evaluates (a table view)
    current: Mapping[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(slots=True)
class _Read:
    started: float  # monotonic
    dimensions: frozenset[str]  # whose sums it holds
    sums: DaySums
    progress: list[PartitionProgress]
    #: events partitions with a backlog when read (None: lag not readable)
    behind: set[int] | None
    #: rollup-changes partition -> its high-water mark when the read started
    covers: dict[int, int] = field(default_factory=dict)


class ShareService(Service):
    def __init__(
        self, settings: Settings, query: Query, tables: ShareTables, **kwargs: Any
    ) -> None:
        self.settings = settings
        self.query = query
        self.tables = tables
        self.rules = load_rules(settings.rules_file)
        self.stats = ShareStats(current=OwnedShares(tables.current, self.owns))
        self.webhook = Delivery.from_settings(settings)  # webhook, Slack, Alertmanager
        self.backlog = Backlog(settings)
        self.producer: AIOKafkaProducer | None = None
        self.ledger: AIOKafkaConsumer | None = None
        #: partition -> its evaluation keys, for the partitions Faust assigned here
        self.owned: dict[int, tuple[str, ...]] = {}
        #: partition -> its engine (fired ids, final windows, snapshot versions)
        self.engines: dict[int, ShareEngine] = {}
        #: partition -> (monotonic time due, why): notices this worker sends itself
        self.due: dict[int, tuple[float, ChangeReason]] = {}
        #: alert ids read from the alerts topic
        self.on_topic: set[str] = set()
        self._flushes: OrderedDict[str, float] = OrderedDict()  # flush id -> first seen
        self._read: _Read | None = None
        #: rollup-changes partition -> its high-water mark as last fetched (set by the agent)
        self.highwater: Callable[[int], int | None] = lambda _: None
        self._sent = 0  # batches of own notices sent
        self._sources: int | None = None  # partitions of the events topic
        self._first_rows: float | None = None  # when rows of only some were seen first
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        s = self.settings
        self.producer = kafka_clients.aio_producer(
            s, client_id=f"{s.worker_id}-shares", max_request_size=16 * 1024 * 1024
        )
        self.ledger = kafka_clients.aio_consumer(
            s,
            client_id=f"{s.worker_id}-ledger",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await self.producer.start()
        await self.ledger.start()
        self.ledger.assign([TopicPartition(s.alerts_topic, 0)])
        await self.ledger.seek_to_beginning()
        await self.add_runtime_dependency(self.webhook)

    async def on_stop(self) -> None:
        await self.backlog.close()
        if self.ledger is not None:
            await self.ledger.stop()
        if self.producer is not None:
            await self.producer.stop()

    # --- ownership ------------------------------------------------------------------
    def keys_of(self, partition: int) -> tuple[str, ...]:
        """The evaluation keys `partition` stands for: the rules' keys, and every
        dimension (its snapshots), that map to it."""
        keys = set(self.rules.keys()) | set(DIMENSIONS)
        return tuple(sorted(k for k in keys if partition_of(k) == partition))

    def keys(self) -> list[str]:
        """The evaluation keys this worker evaluates now."""
        return sorted(k for keys in self.owned.values() for k in keys)

    def owns(self, dimension: str) -> bool:
        return any(dimension in keys for keys in self.owned.values())

    def assigned(self, partitions: Iterable[int]) -> None:
        """Faust's new assignment of the rollup-changes partitions.

        What moved away is forgotten (another worker may fire its alerts meanwhile);
        what came in is evaluated at once, by a takeover notice.
        """
        partitions = set(partitions)
        for partition in set(self.owned) - partitions:
            self.engines.pop(partition, None)
            self.due.pop(partition, None)
        for partition in partitions - set(self.owned):
            self.due[partition] = (0.0, "takeover")
        self.owned = {p: self.keys_of(p) for p in sorted(partitions)}
        log.info("share stage evaluates %s", self.keys())

    async def send_due(self) -> None:
        """Send this worker's own notices whose time has come (run by a timer)."""
        if self.producer is None:
            return
        now = time.monotonic()
        if not any(at <= now for at, _ in self.due.values()):
            return
        # One id for the notices sent together: a read started after now serves them all.
        self._sent += 1
        flush = f"{self.settings.worker_id}-{id(self):x}-{self._sent}"
        self._remember_flush(flush, now)
        for partition, (at, reason) in list(self.due.items()):
            if at > now or partition not in self.owned:
                continue
            del self.due[partition]
            notice = RollupChange(reason=reason, flush=flush)
            try:
                await self.producer.send_and_wait(
                    self.settings.changes_topic,
                    notice.encode(),
                    key=RollupChange.key_of(partition),
                    partition=partition,
                )
            except Exception as exc:  # broker away: keep it due, the timer retries
                self.due.setdefault(partition, (now + RETRY_S, reason))
                log.warning("share notice for partition %d not sent: %s", partition, exc)

    def schedule(self, partition: int, after_s: float, reason: ChangeReason = "recheck") -> None:
        at = time.monotonic() + after_s
        current = self.due.get(partition)
        if current is None or current[0] > at:
            self.due[partition] = (at, reason)

    # --- evaluation -----------------------------------------------------------------
    async def evaluate(
        self, partition: int, notice: RollupChange, offset: int | None = None
    ) -> TickResult | None:
        """Evaluate one partition's keys; call within the notice's Faust event (the
        table writes go to its partition). None when the store cannot be read."""
        if self.producer is None or self.ledger is None:
            return None  # a notice can arrive before this service has started
        started = time.monotonic()
        keys = self.owned.setdefault(partition, self.keys_of(partition))
        engine = self.engines.get(partition)
        if engine is None:
            engine = self.engines[partition] = await self._take_over(partition)
        read = self._answering(notice.flush, partition, offset)
        if read is None:
            wait_s = self._read_wait_s()
            if wait_s > 0:
                self.schedule(partition, wait_s)
                self.stats.deferred += 1
                return None
            try:
                read = await self._sums(notice.flush)
            except Exception as exc:  # store not up yet, or restarting: try again soon
                self.stats.failed_ticks += 1
                self.schedule(partition, RETRY_S)
                log.warning("share evaluation deferred: cannot read day sums: %s", exc)
                return None
        wait_s = await self._sources_missing_for(read)
        if wait_s > 0:
            self.schedule(partition, wait_s)
            return None
        result = engine.tick(read.sums, keys=keys)
        await self._publish(partition, engine, result)
        self._recheck_when_idle(partition, read.progress)
        self.stats.ticks += 1
        for key in keys:
            self.stats.evaluations_by_key[key] = self.stats.evaluations_by_key.get(key, 0) + 1
        self.stats.last_tick_s = time.monotonic() - started
        self.stats.watermark = result.watermark.isoformat() if result.watermark else None
        return result

    async def _sources_missing_for(self, read: _Read) -> float:
        """Seconds to wait before trusting the watermark; 0: now.

        A source partition with no stored row yet is in no progress row, so it does
        not hold the watermark back: evaluated right after the first flushes, which
        may hold some partitions only, windows would look final on part of the data.
        So evaluation waits while a partition with a backlog has no row yet. When
        the lag could not be read, it waits until every events partition has rows,
        or for SOURCES_WAIT_S (at most `idle_partition_seconds`) after this worker
        first saw rows: a partition that never gets any must not hold it for ever."""
        assert self.producer is not None
        progress = read.progress
        if read.behind is not None:
            return RETRY_S if read.behind - {p.partition for p in progress} else 0.0
        if self._sources is None:
            try:
                self._sources = len(await self.producer.partitions_for(self.settings.events_topic))
            except Exception:  # metadata unavailable: do not hold evaluation on it
                return 0.0
        if not progress or len(progress) >= self._sources:
            return 0.0
        now = time.monotonic()
        if self._first_rows is None:
            self._first_rows = now
        bound = min(self.rules.idle_partition_seconds, SOURCES_WAIT_S)
        return max(0.0, self._first_rows + bound - now)

    async def _take_over(self, partition: int) -> ShareEngine:
        """An engine for a partition new to this worker, knowing every alert fired:
        the ledger table's, and the alerts topic's (the table may lack the last ones).
        Ids of other keys' alerts are harmless there: disjoint keys find disjoint alerts."""
        await self.catch_up()
        in_table = self.tables.fired(partition)
        engine = ShareEngine(self.rules)
        engine.remember(in_table | self.on_topic)
        log.info(
            "partition %d (%s) taken over: %d alerts in its ledger, %d on the alerts topic",
            partition,
            ", ".join(self.owned.get(partition, ())),
            len(in_table),
            len(self.on_topic),
        )
        return engine

    async def catch_up(self) -> None:
        """Read the alerts topic to its end: every alert there has fired."""
        assert self.ledger is not None
        tp = TopicPartition(self.settings.alerts_topic, 0)
        end = (await self.ledger.end_offsets([tp]))[tp]
        while await self.ledger.position(tp) < end:
            batch = await self.ledger.getmany(tp, timeout_ms=500)
            for record in batch.get(tp, []):
                if record.key:
                    self.on_topic.add(record.key.decode())

    async def _sums(self, flush: str | None) -> _Read:
        """The day sums, read now (for a notice the last read cannot answer)."""
        if flush and flush not in self._flushes:
            self._remember_flush(flush, time.monotonic())
        keys = self.keys()
        needed = self._needed()
        started = time.monotonic()
        covers = {p: hw for p in self.owned if (hw := self.highwater(p)) is not None}
        segments = frozenset(self.rules.segments_for(keys))
        assert self.producer is not None and self.ledger is not None
        behind = await self.backlog.behind(self.producer, self.ledger)
        sums, progress = await asyncio.get_running_loop().run_in_executor(
            None, self._load, needed, segments, behind
        )
        self.stats.reads += 1
        self._read = _Read(started, needed, sums, progress, behind, covers)
        return self._read

    def _needed(self) -> frozenset[str]:
        """The dimensions this worker's keys read or snapshot."""
        keys = self.keys()
        return frozenset(self.rules.dimensions_for(keys) | {d for d in DIMENSIONS if d in keys})

    def _answering(self, flush: str | None, partition: int, offset: int | None) -> _Read | None:
        """The last read when it holds the rows a notice announces: it holds the
        dimensions needed and started after the notice was fetched (its offset was
        below the partition's high-water mark then), or after another notice of the
        same flush had arrived; else None."""
        read = self._read
        if read is None or not self._needed() <= read.dimensions:
            return None
        seen = self._flushes.get(flush) if flush else None
        if seen is not None and read.started >= seen:
            return read
        if offset is not None and offset < read.covers.get(partition, -1):
            return read
        return None

    def _read_wait_s(self) -> float:
        """Seconds before a new read may start, 0: now. Reads are at least
        `shares_min_interval_s` apart: under heavy ingest a flush lands every second
        or two, and each read and evaluation of the whole history cost as much CPU
        as storing several thousand events. The notices put off meanwhile are
        answered by one read, as soon as the interval has passed."""
        read = self._read
        if read is None:
            return 0.0
        return max(0.0, read.started + self.settings.shares_min_interval_s - time.monotonic())

    def _remember_flush(self, flush: str, at: float) -> None:
        self._flushes[flush] = at
        while len(self._flushes) > _FLUSHES_KEPT:
            self._flushes.popitem(last=False)

    def _load(
        self, dimensions: frozenset[str], segments: frozenset[str], behind: set[int] | None
    ) -> tuple[DaySums, list[PartitionProgress]]:
        """The sums of `dimensions` (those this worker's keys read or snapshot), and of
        the segments its keys' rules filter on (all segments are ten times the rows).

        Lag (``behind``, read just before), then progress, then sums: each read later
        holds at least what the one before it saw, so the watermark never runs ahead
        of the sums."""
        db, idle = self.settings.clickhouse_database, self.rules.idle_partition_seconds
        progress = read_progress(self.query, db)
        if behind is not None:
            progress = with_backlog(progress, behind)
        sums = load_day_sums(self.query, db, idle, dimensions=dimensions, segments=segments)
        sums.max_ts = event_time_reached(progress, idle)
        return sums, progress

    def _recheck_when_idle(self, partition: int, progress: list[PartitionProgress]) -> None:
        """When a source partition behind the others will soon count as idle, the
        watermark moves with no new row: evaluate again then."""
        idle_after = self.rules.idle_partition_seconds
        reached = event_time_reached(progress, idle_after)
        if reached is None:
            return
        holding = [p for p in progress if p.idle_s <= idle_after and p.max_ts <= reached]
        if holding and any(p.max_ts > reached for p in progress):
            self.schedule(partition, idle_after - max(p.idle_s for p in holding) + 0.5)

    async def _publish(self, partition: int, engine: ShareEngine, result: TickResult) -> None:
        assert self.producer is not None
        s = self.settings
        sends = []
        messages = [alert.message() for alert in result.alerts]
        for message in messages:
            sends.append(
                await self.producer.send(
                    s.alerts_topic, message.encode(), key=message.alert_id.encode()
                )
            )
        acks = await asyncio.gather(*sends, return_exceptions=True)
        fired = [m for m, ack in zip(messages, acks, strict=True) if not isinstance(ack, Exception)]
        for message in fired:  # acked: these have fired; remembered before anything can fail
            engine.remember([message.alert_id])
        self._write_table(self.tables.ledger, {m.alert_id: partition for m in fired})
        for message in fired:
            self.stats.recent_alerts.append(message.model_dump(mode="json"))
            self.webhook.submit(message.model_dump(mode="json"))
            log.warning("ALERT %s", message.text)
        self.stats.alerts += len(fired)
        if len(fired) < len(messages):  # the rest fire at the next evaluation
            failed = next(ack for ack in acks if isinstance(ack, Exception))
            raise RuntimeError(f"{len(messages) - len(fired)} alerts not acknowledged: {failed}")
        sends = []
        for snap in result.snapshots:
            sends.append(
                await self.producer.send(s.shares_topic, snap.encode(), key=snap.key.encode())
            )
        await asyncio.gather(*sends)
        newest = {}
        for snap in result.snapshots:
            held = self.tables.current.get(snap.key)
            if held is None or held["window_start"] <= snap.window_start.isoformat():
                newest[snap.key] = snap.model_dump(mode="json")
        self._write_table(self.tables.current, newest)
        self.stats.snapshots += len(result.snapshots)

    def _write_table(self, table: Any, items: Mapping[str, Any]) -> None:
        """Write `items` to a share table; a refusal is logged, never fatal: what was
        published stays published, and the alerts topic backs the ledger up."""
        try:
            for key, value in items.items():
                table[key] = value
        except PartitionsMismatch as exc:  # metadata of a just-created changelog not seen yet
            self.stats.table_refusals += 1
            log.warning("share table %s refused a write: %s", table.name, exc)
