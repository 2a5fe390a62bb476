"""Idempotent writes of enriched rows into ``raw_events``.

Delivery is at-least-once end to end, so the same row can reach this writer
more than once. Three guards make the table exactly-once:

1. Source high-water mark: per (source topic, partition), the greatest
   (offset, index) stored. Rows at or below it are replays (worker restart,
   rebalance, consumer group reset) and are skipped without a query.
2. Event id: a row whose event_id is already stored for the same day (a
   producer that sent the same event twice, a file replayed twice) is dropped.
   The lookup uses the ``by_event_id`` projection, ordered by (day, id hash).
3. Insert token: a retried insert (timeout, lost reply) carries the same
   insert_deduplication_token, so ClickHouse drops the second copy.

Rows of a day that was already final when they arrived are stored all the same
and counted in ``late_events``, by the share stage's watermark rule
(``tokenshare.watermark``).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.binding import format_query_value
from clickhouse_connect.driver.client import Client

from tokenshare.faults import chance, failing
from tokenshare.retry import RetryCallState, RetryPolicy, retrying
from tokenshare.schema.event import EVENT_ID_CHARS
from tokenshare.schema.rows import ROW_COLUMNS, RowBatch
from tokenshare.sinks.clickhouse import INSERT_SETTINGS, StoreError
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

    def write(self, batches: Sequence[RowBatch]) -> int:
        """Store what is new in `batches`; returns rows inserted. Raises StoreError."""
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
            return 0
        columns = _concat(fresh)
        keep, conflicts = self._not_stored(columns)
        if conflicts:
            # Reported before the insert: a crash in between reports them again, never not.
            self.on_conflicts([_row(columns, i) for i in conflicts])
            self.stats.conflicts += len(conflicts)
        if len(keep) < len(columns["event_id"]):
            self.stats.duplicates += len(columns["event_id"]) - len(keep) - len(conflicts)
            columns = {name: [values[i] for i in keep] for name, values in columns.items()}
        if columns["event_id"]:
            mark = self.watermark_ms()  # as the share stage sees it before these rows
            late = self._late_days(columns, mark)
            self._insert(columns, _token(fresh))
            self._record_late(late, mark)
        self.marks = marks  # only once the rows are durable
        inserted = len(columns["event_id"])
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
    def _late_days(columns: dict[str, list[Any]], mark: int | None) -> dict[int, list[int]]:
        """day -> [rows, tokens] of rows whose day had closed before they arrived."""
        late: dict[int, list[int]] = {}
        if mark is None or (min(columns["ts"]) // MS_PER_DAY + 1) * MS_PER_DAY > mark:
            return late  # the usual case, decided without a loop over the rows
        for ts, prompt, completion in zip(
            columns["ts"], columns["prompt_tokens"], columns["completion_tokens"], strict=True
        ):
            day = ts // MS_PER_DAY
            if (day + 1) * MS_PER_DAY <= mark:
                entry = late.setdefault(day, [0, 0])
                entry[0] += 1
                entry[1] += prompt + completion
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

    def _not_stored(self, columns: dict[str, list[Any]]) -> tuple[list[int], list[int]]:
        """(rows to insert, rows in conflict). A row repeating the stored event, or an
        earlier row of the batch, is dropped; the same id on the same day with other
        figures is a conflict. The reference is the stored event when there is one."""
        n = len(columns["event_id"])
        days = [ts // MS_PER_DAY for ts in columns["ts"]]
        keys = list(zip(columns["event_id"], days, strict=True))
        # Built backwards so that each key keeps the index of its first row.
        first_seen = dict(zip(reversed(keys), range(n - 1, -1, -1), strict=True))
        stored = self._stored_ids(first_seen)
        if not stored and len(first_seen) == n:
            return list(range(n)), []  # the usual case: every row is new
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

    def _insert(self, columns: dict[str, list[Any]], token: str) -> None:
        """One insert, retried with the same token; StoreError once the attempts ran out."""
        settings = {**INSERT_SETTINGS, "insert_deduplication_token": token}

        def insert() -> None:
            if failing("store.down"):
                raise ConnectionError("injected fault: ClickHouse unavailable")
            self.client.insert(
                self.table,
                [columns[c] for c in ROW_COLUMNS],
                column_names=list(ROW_COLUMNS),
                column_oriented=True,
                settings=settings,
            )
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
_PLAIN_IDS = re.compile(f"[{EVENT_ID_CHARS}]*")


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
    if _PLAIN_IDS.fullmatch(joined):
        return f"splitByChar(' ', '{joined}')"
    return str(format_query_value([eid for eid, _ in keys]))


def _fingerprint(columns: dict[str, list[Any]], i: int) -> tuple[Any, ...]:
    return tuple(columns[name][i] for name in FINGERPRINT)


def _row(columns: dict[str, list[Any]], i: int) -> dict[str, Any]:
    return {name: values[i] for name, values in columns.items()}


def _concat(batches: Sequence[RowBatch]) -> dict[str, list[Any]]:
    if len(batches) == 1:
        return batches[0].columns
    return {name: [v for b in batches for v in b.columns[name]] for name in ROW_COLUMNS}


def _token(batches: Sequence[RowBatch]) -> str:
    """Same rows, same token: derived from the source ranges the insert covers."""
    spans = ",".join(
        f"{b.src_topic}/{b.src_partition}/{b.first[0]}.{b.first[1]}-{b.last[0]}.{b.last[1]}"
        for b in batches
    )
    return hashlib.blake2b(spans.encode(), digest_size=16).hexdigest()
