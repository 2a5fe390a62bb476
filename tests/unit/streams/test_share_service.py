"""The share stage's spread over workers, without a broker: which keys a partition
stands for, what a rebalance keeps and drops, when an idle source partition asks
for a recheck, and which current shares a worker shows."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import faust
import pytest

from tokenshare.schema.changes import CHANGE_PARTITIONS
from tokenshare.schema.vocabulary import DIMENSIONS
from tokenshare.settings import Settings
from tokenshare.streams.shares.engine import ShareEngine
from tokenshare.streams.shares.service import ShareService
from tokenshare.streams.shares.tables import OwnedShares, share_tables
from tokenshare.watermark import PartitionProgress


@pytest.fixture
def service(tmp_path: Path) -> ShareService:
    app = faust.App("unit-shares", broker="kafka://127.0.0.1:1", store="memory://")
    return ShareService(Settings(home=tmp_path), lambda sql: [], share_tables(app))


def test_every_key_is_evaluated_under_exactly_one_partition(service: ShareService) -> None:
    per_partition = [service.keys_of(p) for p in range(CHANGE_PARTITIONS)]
    keys = [k for ks in per_partition for k in ks]
    assert len(keys) == len(set(keys))
    assert set(keys) == set(service.rules.keys()) | set(DIMENSIONS)
    assert all(per_partition)  # no partition without work: every worker given one has some


def test_a_rebalance_drops_what_moved_away_and_takes_over_what_came(
    service: ShareService,
) -> None:
    service.assigned([0, 1])
    assert {p: reason for p, (_, reason) in service.due.items()} == {0: "takeover", 1: "takeover"}
    service.engines = {0: ShareEngine(service.rules), 1: ShareEngine(service.rules)}
    kept = service.engines[1]
    service.due.clear()
    service.assigned([1, 2])
    assert set(service.engines) == {1} and service.engines[1] is kept
    assert {p: reason for p, (_, reason) in service.due.items()} == {2: "takeover"}
    assert service.keys() == sorted([*service.keys_of(1), *service.keys_of(2)])


def progress(ts_hours: float, idle_s: float) -> PartitionProgress:
    return PartitionProgress(datetime(2026, 3, 1, tzinfo=UTC) + timedelta(hours=ts_hours), idle_s)


def test_a_partition_behind_the_others_asks_for_a_recheck_when_it_goes_idle(
    service: ShareService,
) -> None:
    idle_after = service.rules.idle_partition_seconds
    before = time.monotonic()
    service._recheck_when_idle(3, [progress(0, 1.0), progress(5, 0.2)])
    (at, reason) = service.due[3]
    assert reason == "recheck"
    assert before + idle_after - 1.0 <= at <= time.monotonic() + idle_after - 1.0 + 0.5


def test_no_recheck_when_the_watermark_cannot_move_without_rows(service: ShareService) -> None:
    idle_after = service.rules.idle_partition_seconds
    service._recheck_when_idle(3, [progress(5, 0.1), progress(5, 0.3)])  # level
    service._recheck_when_idle(4, [progress(0, idle_after + 1), progress(5, idle_after + 2)])
    assert service.due == {}


def test_a_worker_shows_the_current_shares_of_its_own_dimensions_only() -> None:
    table = {
        "iso_week|origin_bloc|tokens": {"dimension": "origin_bloc"},
        "iso_week|model|tokens": {"dimension": "model"},
    }
    view = OwnedShares(table, lambda d: d == "model")
    assert dict(view) == {"iso_week|model|tokens": {"dimension": "model"}}
    with pytest.raises(KeyError):
        view["iso_week|origin_bloc|tokens"]


def test_evaluation_waits_while_a_partition_with_a_backlog_has_no_rows_yet(
    service: ShareService,
) -> None:
    """The killed worker's partitions have events waiting and no row stored yet:
    windows must not look final on the other partitions alone."""
    import asyncio

    from tokenshare.streams.shares.engine import DaySums
    from tokenshare.streams.shares.service import RETRY_S, _Read

    service.producer = object()  # type: ignore[assignment]  # only checked for presence
    stored = [replace(progress(5, 0.2), partition=0)]

    def wait(behind: set[int]) -> float:
        read = _Read(time.monotonic(), frozenset(), DaySums(), stored, behind)
        return asyncio.run(service._sources_missing_for(read))

    assert wait({1}) == RETRY_S  # partition 1: events waiting, nothing stored
    assert wait({0}) == 0.0  # behind, but its rows hold the watermark back already
    assert wait(set()) == 0.0  # partition 1 is quiet: no backlog, no wait


def test_reads_are_kept_apart_and_a_notice_put_off_is_answered_by_a_recheck(
    tmp_path: Path,
) -> None:
    """A flush lands every second or two under heavy ingest: a notice the last read
    cannot answer, sooner than shares_min_interval_s after it, is put off until the
    interval has passed, and the partition gets a recheck then; one the last read
    answers (same flush) is evaluated at once."""
    from tokenshare.streams.shares.engine import DaySums
    from tokenshare.streams.shares.service import _Read

    def too_soon(service: ShareService, partition: int, flush: str) -> float:
        """What evaluate waits before reading for this notice (0: now, or answered)."""
        if service._answering(flush, partition, None) is not None:
            return 0.0
        return service._read_wait_s()

    app = faust.App("unit-shares-apart", broker="kafka://127.0.0.1:1", store="memory://")
    settings = Settings(home=tmp_path, shares_min_interval_s=5.0)
    service = ShareService(settings, lambda sql: [], share_tables(app))
    service.assigned([0, 1])
    assert too_soon(service, 0, "flush-1") == 0.0  # no read yet: read now

    service._remember_flush("flush-1", time.monotonic())
    service._read = _Read(time.monotonic(), service._needed(), DaySums(), [], set())
    assert too_soon(service, 1, "flush-1") == 0.0  # the read holds flush-1's rows
    wait = too_soon(service, 0, "flush-2")
    assert 4.0 < wait <= 5.0  # a newer flush, right after the read: put off

    service.due.clear()
    service.schedule(0, wait)
    assert service.due[0][1] == "recheck"
    service._read = replace(service._read, started=time.monotonic() - 5.0)
    assert too_soon(service, 0, "flush-2") == 0.0  # the interval has passed

    other = faust.App("unit-shares-no-gap", broker="kafka://127.0.0.1:1", store="memory://")
    no_gap = ShareService(
        Settings(home=tmp_path, shares_min_interval_s=0.0), lambda sql: [], share_tables(other)
    )
    no_gap.assigned([0])
    no_gap._read = replace(service._read, started=time.monotonic())
    assert too_soon(no_gap, 0, "flush-3") == 0.0  # 0: a read per flush
