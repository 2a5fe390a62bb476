"""The event-time watermark: one rule for window finality and for late rows.

A window is final, and a row of its days late, once the watermark has passed the
window's end. The watermark is the event time every active source partition has
reached, minus the allowed lateness. A partition that received no rows for longer
than ``idle_after_s`` (ingest time) is left out: one quiet partition would otherwise
keep every window open for ever. When all are quiet, the greatest event time counts.
A partition with a backlog (events in Kafka not yet stored, known to whoever can see
the consumer groups' lag) is never left out, however long since its last rows: a
worker killed or restarting, or a store catching up, is not a quiet source.

The share stage (finality) and the store (late-row counting) both read the
progress of each partition from the ``partition_watermarks`` table with
:data:`PROGRESS_SQL` and apply :class:`WatermarkRule`, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence, Set
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

#: Runs SQL, returns the rows.
Query = Callable[[str], Sequence[Sequence[Any]]]

#: Per source partition: the greatest event time stored, and the seconds since rows
#: last arrived, on the ClickHouse server's clock (the one that stamped them).
PROGRESS_SQL = """
SELECT src_topic, src_partition, max(max_ts),
       dateDiff('millisecond', max(last_ingested), now64(3)) / 1000
FROM {db}.partition_watermarks GROUP BY src_topic, src_partition
"""


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """How far one source partition has got."""

    max_ts: datetime  #: greatest event time stored
    idle_s: float  #: seconds since rows of it were last stored
    partition: int = -1  #: the source (events topic) partition
    backlog: bool = False  #: events of it wait in Kafka: never idle


def read_progress(query: Query, database: str) -> list[PartitionProgress]:
    """Every source partition's progress, as stored in ``database``."""
    return [
        PartitionProgress(_as_datetime(ts), float(idle or 0), int(partition))
        for _topic, partition, ts, idle in query(PROGRESS_SQL.format(db=database))
    ]


def with_backlog(
    progress: Iterable[PartitionProgress], behind: Set[int]
) -> list[PartitionProgress]:
    """``progress`` with the source partitions in ``behind`` marked as having a backlog."""
    return [replace(p, backlog=p.partition in behind) for p in progress]


def event_time_reached(
    progress: Iterable[PartitionProgress], idle_after_s: float
) -> datetime | None:
    """The least greatest event time of the active partitions (rows lately, or a
    backlog); when all are idle, the greatest; None before any row."""
    partitions = list(progress)
    active = [p.max_ts for p in partitions if p.idle_s <= idle_after_s or p.backlog]
    if active:
        return min(active)
    return max((p.max_ts for p in partitions), default=None)


def watermark(event_time: datetime | None, lateness: timedelta) -> datetime | None:
    """What event time may still bring no more rows for: windows ending by it are final."""
    return None if event_time is None else event_time - lateness


@dataclass(frozen=True, slots=True)
class WatermarkRule:
    """The two figures of the rule (the share rules' ``lateness_hours`` and
    ``idle_partition_seconds``), given to whoever needs the watermark."""

    lateness: timedelta
    idle_after_s: float

    def of(self, progress: Iterable[PartitionProgress]) -> datetime | None:
        return watermark(event_time_reached(progress, self.idle_after_s), self.lateness)


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
