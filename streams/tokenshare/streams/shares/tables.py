"""The share stage's state, in Faust tables: fired alerts and current shares.

Both tables are co-partitioned with the rollup-changes topic (one partition per
dimension, ``schema.changes``), and written only by the share agent while it
handles a notice, so an entry lands in the changelog partition of the dimension
it is about: the worker that takes a partition over recovers exactly the state
of the evaluation keys it now owns.

- ``ledger``: alert id -> partition, for every alert the broker acknowledged.
  The write follows the ack, so a kill -9 in between loses it; the agent
  therefore also reads the alerts topic when it takes a dimension over (see
  ``service``).
- ``current``: snapshot key ("<window_kind>|<dimension>|<measure>") -> the newest
  window's snapshot (JSON), what ``/shares`` and the share gauges show.

Standby replicas (Faust's ``table_standby_replicas``) may hold other workers'
partitions too; readers filter by the dimensions the worker owns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TableT
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from tokenshare import kafka_clients
from tokenshare.schema.changes import CHANGE_PARTITIONS
from tokenshare.settings import Settings


@dataclass(frozen=True, slots=True)
class ShareTables:
    ledger: TableT[str, int]
    current: TableT[str, dict[str, Any]]

    def changelogs(self) -> list[str]:
        return [t.changelog_topic.get_topic_name() for t in (self.ledger, self.current)]

    def ensure_changelogs(self, settings: Settings) -> None:
        """Create the changelog topics before Faust's consumer starts. Faust would create
        them itself, but a consumer that subscribed before they existed keeps a metadata
        snapshot without their partitions until its next rebalance, and refuses every
        table write meanwhile (PartitionsMismatch); a lone worker may never rebalance."""
        admin = kafka_clients.admin(settings, client_id=f"{settings.worker_id}-tables")
        try:
            existing = set(admin.list_topics())
            for name in self.changelogs():
                if name in existing:
                    continue
                topic = NewTopic(
                    name,
                    CHANGE_PARTITIONS,
                    settings.replication_factor,
                    topic_configs={"cleanup.policy": "compact"},
                )
                with suppress(TopicAlreadyExistsError):  # another worker won the race
                    admin.create_topics([topic])
        finally:
            admin.close()

    def fired(self, partition: int) -> set[str]:
        """The alert ids the ledger holds for the keys of `partition`."""
        return {alert_id for alert_id, p in self.ledger.items() if p == partition}


def share_tables(app: faust.App) -> ShareTables:
    # Keys come back from the changelog as str (raw bytes otherwise); values are JSON.
    common: dict[str, Any] = {"partitions": CHANGE_PARTITIONS, "key_type": str}
    return ShareTables(
        ledger=app.Table("shares-ledger", help="alert id -> partition of fired alerts", **common),
        current=app.Table("shares-current", help="latest snapshot per key", **common),
    )


class OwnedShares(Mapping[str, dict[str, Any]]):
    """The current-shares table, limited to the dimensions this worker evaluates now."""

    def __init__(self, table: Mapping[str, dict[str, Any]], owns: Callable[[str], bool]) -> None:
        self.table = table
        self.owns = owns

    def _items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        return ((k, v) for k, v in self.table.items() if self.owns(v["dimension"]))

    def __getitem__(self, key: str) -> dict[str, Any]:
        value = self.table[key]
        if not self.owns(value["dimension"]):
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items())

    def __len__(self) -> int:
        return sum(1 for _ in self._items())
