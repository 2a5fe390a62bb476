"""Fault injection: an outage (`<point>_s`) runs from the first time its point is
reached, so a process whose first write comes late still meets all of it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tokenshare import faults


def test_an_outage_starts_when_its_point_is_first_reached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1_000.0]
    monkeypatch.setattr(faults, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(faults, "_FIRST_REACHED", {})
    configured = {"store.down_s": 8.0}
    clock[0] += 30  # the process started long before its first write
    assert faults.failing("store.down", configured)
    clock[0] += 7.9
    assert faults.failing("store.down", configured)
    clock[0] += 0.2
    assert not faults.failing("store.down", configured)
    assert not faults.failing("worker.down", configured)  # not configured
    assert not faults.failing("store.down", {})
