"""Idempotent writes of enriched rows into ``raw_events``.

Delivery is at-least-once end to end, so the same row can reach this writer
more than once. Three guards make the table exactly-once:

1. Source high-water mark: per (source topic, partition), the greatest
   (offset, index) stored. Rows at or below it are replays (worker restart,
   rebalance, consumer group reset) and are skipped without a query.
2. Event id: a row whose event_id is already stored for the same day (a
   producer that sent the same event twice, a file replayed twice) is dropped.
   The lookup uses the ``by_event_id`` projection, ordered by (day, id hash).
   Where this writer is the table's only writer (``sole_writer``: an embedded
   data path), ids that a per-day Bloom filter proves new skip the lookup
   (``sinks.id_filter``); only the others are looked up.
3. Insert token: a retried insert (timeout, lost reply) carries the same
   insert_deduplication_token, so ClickHouse drops the second copy.

An insert writes raw_events and then each materialized view's table, so one
that fails (a full disk) may have stored the raw rows and not their rollups.
The rows read again would then be dropped by guard 2 and the rollups would
never get them: the failed insert is kept and sent again first, same rows,
same token, until it succeeds (``_Unsettled``). raw_events drops what it
holds, and each view writes what it lacks
(``deduplicate_blocks_in_dependent_materialized_views``).

Rows travel as Arrow (``schema.rows``) and are inserted with the engine's
Arrow input: Python values are made only for the rows the guards must look at.

Rows of a day that was already final when they arrived are stored all the same
and counted in ``late_events``, by the share stage's watermark rule
(``tokenshare.watermark``).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
from clickhouse_connect.driver.binding import format_query_value
from clickhouse_connect.driver.client import Client
from numpy.typing import NDArray

from tokenshare.faults import chance, failing
from tokenshare.retry import RetryCallState, RetryPolicy, retrying
from tokenshare.schema.event import EVENT_ID_CHARS
from tokenshare.schema.rows import ROW_SCHEMA, RowBatch
from tokenshare.sinks.clickhouse import INSERT_SETTINGS, StoreError
from tokenshare.sinks.id_filter import IdFilter, id_hashes
from tokenshare.watermark import WatermarkRule, read_progress

Mark = tuple[int, int]
#: Characters of event ids per lookup query: under ClickHouse's default
#: max_query_size (256 KiB), and keeps server-mode HTTP requests small.
LOOKUP_CHARS = 200_000
#: Event ids per fingerprint query (rare: only ids seen again).
LOOKUP_CHUNK = 5_000
MS_PER_DAY = 86_400_000
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
log = logging.getLogger(__name__)

#: Pauses between the attempts of one insert.
INSERT_RETRY = RetryPolicy(first_s=0.2, max_s=10.0)


@dataclass(slots=True)
class WriteStats:
    inserted: int = 0
    replayed: int = 0  # skipped by the source high-water mark
    duplicates: int = 0  # skipped by event id
    inserts: int = 0
    retries: int = 0
    late: int = 0  # stored after their day had closed (see late_events)
    conflicts: int = 0  # same event id and day, other figures: dead-lettered


@dataclass(slots=True)
class _Unsettled:
    """An insert that failed: some of its tables may hold its rows, others not."""

    table: pa.Table
    token: str
    marks: dict[tuple[str, int], Mark]  #: the writer's marks once it is durable
    late: dict[int, list[int]]
    mark: int | None


@dataclass(slots=True)
class RawEventWriter:
    client: Client
    database: str
    retries: int = 4  # then the store re-reads from its last commit and tries again
    sleep: Callable[[float], None] = time.sleep
    #: The share stage's watermark rule: rows of days it held final are counted as
    #: late. None: not counted (no share stage reads these rows).
    watermark: WatermarkRule | None = None
    marks: dict[tuple[str, int], Mark] = field(default_factory=dict)
    stats: WriteStats = field(default_factory=WriteStats)
    #: Receives rows refused as conflicting repeats (the store dead-letters them).
    on_conflicts: Callable[[list[dict[str, Any]]], None] = lambda rows: None
    #: True when nothing else writes this table (embedded: one store per data path):
    #: then a Bloom filter of the stored ids spares most event-id lookups.
    sole_writer: bool = False
    ids: IdFilter | None = field(default=None, init=False)
    _unsettled: _Unsettled | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.sole_writer:
            self.ids = IdFilter(self._stored_ids_of_days)

    @property
    def table(self) -> str:
        return f"{self.database}.raw_events"

    def load_marks(self) -> None:
        """Read the high-water marks from the table (on start and after a rebalance)."""
        rows = self.client.query(
            f"SELECT src_topic, src_partition, max((src_offset, src_index)) FROM {self.table} "
            "GROUP BY src_topic, src_partition"
        ).result_rows
        self.marks = {(t, int(p)): (int(m[0]), int(m[1])) for t, p, m in rows}
        if self.ids is not None:
            self.ids.clear()  # rebuilt from the table as flushes need its days
        if not self.sole_writer and self._unsettled is not None:
            # Its partitions may have moved to another store, which writes the rows
            # itself: sent again here they could be stored twice.
            log.warning("a failed insert is not retried after a rebalance")
            self._unsettled = None

    def write(self, batches: Sequence[RowBatch]) -> int:
        """Store what is new in `batches`; returns rows inserted. Raises StoreError."""
        settled = self._settle()
        fresh: list[RowBatch] = []
        marks = dict(self.marks)  # advanced per batch: a replay may sit in the same call
        for batch in batches:
            key = (batch.src_topic, batch.src_partition)
            new = batch.slice_after(marks.get(key, (-1, -1)))
            self.stats.replayed += len(batch) - len(new)
            if len(new):
                fresh.append(new)
                marks[key] = new.last
        if not fresh:
            return settled
        table = pa.Table.from_batches([b.arrow for b in fresh], schema=ROW_SCHEMA)
        n = table.num_rows
        ts_ms = _ts_ms(table)
        days = ts_ms // MS_PER_DAY
        hashes = id_hashes(table.column("event_id"))
        keep, conflicts = self._not_stored(table, hashes, days)
        if conflicts:
            # Reported before the insert: a crash in between reports them again, never not.
            self.on_conflicts(conflicts)
            self.stats.conflicts += len(conflicts)
        if keep is not None:
            self.stats.duplicates += n - int(np.count_nonzero(keep)) - len(conflicts)
            table, ts_ms, hashes, days = (
                table.filter(pa.array(keep)),
                ts_ms[keep],
                hashes[keep],
                days[keep],
            )
        if table.num_rows:
            mark = self.watermark_ms()  # as the share stage sees it before these rows
            late = self._late_days(table, ts_ms, mark)
            if self.ids is not None:  # before the insert: its outcome may stay unknown
                self.ids.add(hashes, days)
            token = _token(fresh)
            try:
                self._insert(table, token)
            except StoreError:
                self._unsettled = _Unsettled(table, token, marks, late, mark)
                raise
            self._record_late(late, mark)
        self.marks = marks  # only once the rows are durable
        inserted = int(table.num_rows)
        self.stats.inserted += inserted
        return settled + inserted

    def _settle(self) -> int:
        """Send the insert that failed again, verbatim; returns its rows. Raises
        StoreError while it still fails (nothing else is written meanwhile)."""
        unsettled = self._unsettled
        if unsettled is None:
            return 0
        self._insert(unsettled.table, unsettled.token)
        self._unsettled = None
        for key, mark in unsettled.marks.items():  # its rows, read again, are replays
            self.marks[key] = max(mark, self.marks.get(key, mark))
        self._record_late(unsettled.late, unsettled.mark)
        inserted = int(unsettled.table.num_rows)
        self.stats.inserted += inserted
        return inserted

    def watermark_ms(self) -> int | None:
        """The share stage's watermark over what is stored now (epoch ms); None before
        any row, or without a rule."""
        if self.watermark is None:
            return None
        try:
            progress = read_progress(lambda sql: self.client.query(sql).result_rows, self.database)
        except Exception as exc:  # the driver's error types differ by backend
            raise StoreError(f"cannot read the watermark from {self.database}: {exc}") from exc
        mark = self.watermark.of(progress)
        return None if mark is None else (mark - EPOCH) // timedelta(milliseconds=1)

    @staticmethod
    def _late_days(
        table: pa.Table, ts_ms: NDArray[np.int64], mark: int | None
    ) -> dict[int, list[int]]:
        """day -> [rows, tokens] of rows whose day had closed before they arrived."""
        late: dict[int, list[int]] = {}
        if mark is None or (int(ts_ms.min()) // MS_PER_DAY + 1) * MS_PER_DAY > mark:
            return late  # the usual case, decided without a look at each row
        days = ts_ms // MS_PER_DAY
        closed = (days + 1) * MS_PER_DAY <= mark
        tokens = table.column("prompt_tokens").to_numpy().astype(np.int64) + table.column(
            "completion_tokens"
        ).to_numpy().astype(np.int64)
        for day in np.unique(days[closed]).tolist():
            rows = closed & (days == day)
            late[int(day)] = [int(np.count_nonzero(rows)), int(tokens[rows].sum())]
        return late

    def _record_late(self, late: dict[int, list[int]], mark: int | None) -> None:
        if not late or mark is None:
            return
        now = datetime.now(UTC)
        at = EPOCH + timedelta(milliseconds=mark)
        rows = [
            [now, date.fromordinal(EPOCH_ORDINAL + day), n, tokens, at]
            for day, (n, tokens) in sorted(late.items())
        ]
        self.client.insert(
            f"{self.database}.late_events",
            rows,
            column_names=["recorded_at", "day", "rows", "tokens", "watermark"],
            settings=INSERT_SETTINGS,
        )
        self.stats.late += sum(n for n, _ in late.values())

    def _not_stored(
        self, table: pa.Table, hashes: NDArray[np.uint64], days: NDArray[np.int64]
    ) -> tuple[NDArray[np.bool_] | None, list[dict[str, Any]]]:
        """(rows to insert, None for all; rows in conflict). A row repeating the
        stored event, or an earlier row of the flush, is dropped; the same id on
        the same day with other figures is a conflict.

        Only candidates are looked at one by one: rows the id filter cannot prove
        new (all of them without one), and rows whose (id hash, day) occurs more
        than once in the flush. Every row of a repeated key is a candidate, so
        among the candidates each key's first row is its first in the flush."""
        n = table.num_rows
        if self.ids is None:
            candidates = np.ones(n, dtype=bool)
        else:
            candidates = self.ids.maybe_stored(hashes, days)
            with np.errstate(over="ignore"):
                mixed = hashes ^ (days.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
            _, inverse, counts = np.unique(mixed, return_inverse=True, return_counts=True)
            candidates |= counts[inverse] > 1
        if not candidates.any():
            return None, []  # the usual case: every row provably new
        at = np.flatnonzero(candidates)
        sub = table.take(pa.array(at)) if len(at) < n else table
        ids = sub.column("event_id").to_pylist()
        keys = list(zip(ids, days[at].tolist(), strict=True))
        # Built backwards so that each key keeps the index of its first row.
        first_seen = dict(zip(reversed(keys), range(len(keys) - 1, -1, -1), strict=True))
        stored = self._stored_ids(first_seen)
        if not stored and len(first_seen) == len(keys):
            return None, []  # every candidate is new after all
        columns = _columns(sub)  # only now every value: figures are compared
        keep_sub, conflicts = self._exact(columns, keys, first_seen, stored)
        keep = ~candidates
        keep[at[keep_sub]] = True
        return keep, [_row(columns, i) for i in conflicts]

    def _exact(
        self,
        columns: dict[str, list[Any]],
        keys: list[tuple[str, int]],
        first_seen: dict[tuple[str, int], int],
        stored: set[tuple[str, int]],
    ) -> tuple[list[int], list[int]]:
        """(rows to keep, rows in conflict) among rows that repeat a key. The
        reference is the stored event when there is one."""
        reference = self._stored_fingerprints(stored) if stored else {}
        keep: list[int] = []
        conflicts: list[int] = []
        for i, key in enumerate(keys):
            if key not in stored and first_seen[key] == i:
                keep.append(i)
                continue
            ref = reference.get(key) if key in stored else _fingerprint(columns, first_seen[key])
            if ref != _fingerprint(columns, i):
                conflicts.append(i)
        return keep, conflicts

    def _stored_ids(self, keys: Iterable[tuple[str, int]]) -> set[tuple[str, int]]:
        found: set[tuple[str, int]] = set()
        for chunk in _lookup_chunks(keys):
            days = sorted({d for _, d in chunk})
            rows = self.client.query(
                f"SELECT event_id, toUInt32(day) FROM {self.table} "
                "WHERE day IN (SELECT toDate(arrayJoin({days:Array(UInt32)}))) "
                f"AND id_hash IN (SELECT cityHash64(arrayJoin({_id_list(chunk)})))",
                parameters={"days": days},
            ).result_rows
            found.update((eid, int(day)) for eid, day in rows)
        return found

    def _stored_ids_of_days(self, days: list[int]) -> dict[int, list[pa.Array]]:
        """The ids stored for each of `days` (days since 1970), for the id filter."""
        try:
            found = self.client.query_arrow(
                f"SELECT toUInt32(day) AS d, event_id FROM {self.table} "
                "WHERE day IN (SELECT toDate(arrayJoin({days:Array(UInt32)})))",
                parameters={"days": days},
            )
        except Exception as exc:  # the driver's error types differ by backend
            raise StoreError(f"cannot read the event ids of {len(days)} days: {exc}") from exc
        if found.num_rows == 0:
            return {}
        of_day = found.column("d").to_numpy()
        ids = found.column("event_id")
        return {
            int(day): [ids.filter(pa.array(of_day == day)).combine_chunks()]
            for day in np.unique(of_day).tolist()
        }

    def _stored_fingerprints(
        self, keys: set[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[Any, ...]]:
        """The figures of stored events (rare: only for ids seen again)."""
        out: dict[tuple[str, int], tuple[Any, ...]] = {}
        items = sorted(keys)
        for start in range(0, len(items), LOOKUP_CHUNK):
            chunk = items[start : start + LOOKUP_CHUNK]
            rows = self.client.query(
                f"SELECT event_id, toUInt32(day), toUnixTimestamp64Milli(ts), {FINGERPRINT_SQL} "
                f"FROM {self.table} "
                "WHERE day IN (SELECT toDate(arrayJoin({days:Array(UInt32)}))) "
                "AND event_id IN {ids:Array(String)}",
                parameters={
                    "days": sorted({d for _, d in chunk}),
                    "ids": [eid for eid, _ in chunk],
                },
            ).result_rows
            for eid, day, *figures in rows:
                out[(eid, int(day))] = tuple(figures)
        return out

    def _insert(self, table: pa.Table, token: str) -> None:
        """One insert, retried with the same token; StoreError once the attempts ran out."""
        settings = {**INSERT_SETTINGS, "insert_deduplication_token": token}

        def insert() -> None:
            if failing("store.down"):
                raise ConnectionError("injected fault: ClickHouse unavailable")
            self.client.insert_arrow(self.table, table, settings=settings)
            self.stats.inserts += 1
            if chance("store.lose_reply"):
                raise ConnectionError("injected fault: the insert's reply was lost")

        def count(_: RetryCallState) -> None:
            self.stats.retries += 1

        attempts = self.retries + 1
        try:
            # Driver errors vary by backend: every one is retried.
            retrying(
                INSERT_RETRY, on=Exception, attempts=attempts, sleep=self.sleep, on_retry=count
            )(insert)
        except Exception as exc:
            raise StoreError(
                f"insert into {self.table} failed {attempts} times: {exc}. "
                "Rows stay uncommitted in Kafka and are retried on restart."
            ) from exc


#: What must match for a repeated event id to be the same event.
FINGERPRINT = (
    "ts",
    "model",
    "provider",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cached_tokens",
    "cost_usd",
)
FINGERPRINT_SQL = ", ".join(FINGERPRINT[1:])


#: What an event id may hold (schema.event's pattern): nothing that needs quoting.
_PLAIN_IDS = re.compile(f"[ {EVENT_ID_CHARS}]*")


def _lookup_chunks(keys: Iterable[tuple[str, int]]) -> Iterator[list[tuple[str, int]]]:
    chunk: list[tuple[str, int]] = []
    size = 0
    for key in keys:
        chunk.append(key)
        size += len(key[0]) + 1
        if size >= LOOKUP_CHARS:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _id_list(keys: Sequence[tuple[str, int]]) -> str:
    """SQL for the array of the keys' event ids.

    Binding an Array(String) parameter escapes every id character by character
    in Python, which cost more than the lookup itself. Ids that match the
    event-id pattern (all that a worker writes) need no escaping: they are
    joined into one literal and split by the server. Anything else is bound.
    """
    joined = " ".join(eid for eid, _ in keys)
    # Spaces only between ids (none inside one): the split gives the ids back.
    if _PLAIN_IDS.fullmatch(joined) and joined.count(" ") == len(keys) - 1:
        return f"splitByChar(' ', '{joined}')"
    return str(format_query_value([eid for eid, _ in keys]))


def _fingerprint(columns: dict[str, list[Any]], i: int) -> tuple[Any, ...]:
    return tuple(columns[name][i] for name in FINGERPRINT)


def _row(columns: dict[str, list[Any]], i: int) -> dict[str, Any]:
    return {name: values[i] for name, values in columns.items()}


def _ts_ms(table: pa.Table) -> NDArray[np.int64]:
    ts: NDArray[np.int64] = table.column("ts").cast(pa.int64()).to_numpy()
    return ts


def _columns(table: pa.Table) -> dict[str, list[Any]]:
    """Python lists of `table`'s columns, `ts` in epoch ms (as the rows' JSON had it)."""
    columns: dict[str, list[Any]] = table.to_pydict()
    columns["ts"] = _ts_ms(table).tolist()
    return columns


def _token(batches: Sequence[RowBatch]) -> str:
    """Same rows, same token: derived from the source ranges the insert covers."""
    spans = ",".join(
        f"{b.src_topic}/{b.src_partition}/{b.first[0]}.{b.first[1]}-{b.last[0]}.{b.last[1]}"
        for b in batches
    )
    return hashlib.blake2b(spans.encode(), digest_size=16).hexdigest()
