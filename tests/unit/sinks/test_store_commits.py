"""The store's offset commits: a failed commit is kept and retried, never dropped."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError

from tokenshare.sinks.checkpoint import Commits

P0, P1, P2 = (TopicPartition("t.rows", p) for p in range(3))


class FakeConsumer:
    def __init__(self, assigned: set[TopicPartition], failures: int = 0) -> None:
        self.assigned = assigned
        self.failures = failures
        self.committed: dict[TopicPartition, int] = {}
        self.attempts = 0

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise KafkaTimeoutError("Timeout committing offsets")
        self.committed.update({tp: meta.offset for tp, meta in offsets.items()})


def test_a_failed_commit_is_retried_until_it_succeeds(caplog: pytest.LogCaptureFixture) -> None:
    consumer = FakeConsumer({P0, P1}, failures=2)
    commits = Commits(consumer, "t.store")
    commits.add({P0: 10, P1: 4})
    with caplog.at_level(logging.INFO, logger="tokenshare.store"):
        assert not commits.commit()
        assert commits.retry_at > time.monotonic() and not commits.due()  # backoff
        commits.retry_at = 0.0
        assert commits.due()
        assert not commits.commit()
        commits.retry_at = 0.0
        assert commits.commit()
    # The last rows of a partition, with nothing after them, still get committed.
    assert consumer.committed == {P0: 10, P1: 4}
    assert consumer.attempts == 3 and not commits.offsets and not commits.due()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("offset commit failed" in m for m in messages) == 1  # once per streak
    assert "2 partitions are stored but not committed" in messages[0]
    assert "committed again after 2 failed attempts" in messages[-1]


def test_offsets_of_partitions_moved_away_are_not_committed() -> None:
    consumer = FakeConsumer({P0, P1}, failures=1)
    commits = Commits(consumer, "t.store")
    commits.add({P0: 10, P1: 4, P2: 7})  # P2 was revoked after its rows were stored
    commits.commit()
    consumer.assigned = {P0}  # and P1 moved too, before the retry
    assert commits.commit()
    assert consumer.committed == {P0: 10}


def test_a_replay_after_a_rebalance_does_not_move_a_stored_position_back() -> None:
    consumer = FakeConsumer({P0}, failures=1)
    commits = Commits(consumer, "t.store")
    commits.add({P0: 10})
    commits.commit()
    commits.add({P0: 6})  # re-read from the last commit (5) after a rebalance
    assert commits.commit()
    assert consumer.committed == {P0: 10}


def test_nothing_to_commit_is_no_commit() -> None:
    consumer = FakeConsumer({P0})
    commits = Commits(consumer, "t.store")
    assert commits.commit() and not commits.due()
    assert consumer.attempts == 0
