"""A worker that fails in its first seconds starts itself again (Faust cannot start an
app twice in one process); a clean stop or a late failure exits as usual."""

from __future__ import annotations

import time

import pytest

from tokenshare.cli import pipeline


class Exec(Exception):
    """Raised instead of replacing the test process."""


@pytest.fixture
def execs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []

    def execv(path: str, argv: list[str]) -> None:
        calls.append(argv)
        raise Exec

    monkeypatch.setattr(pipeline.os, "execv", execv)
    monkeypatch.setattr(pipeline.time, "sleep", lambda s: None)
    monkeypatch.setattr(pipeline.sys, "argv", ["tokenshare", "worker", "--web-port", "7000"])
    monkeypatch.setenv(pipeline._ATTEMPT_ENV, "1")  # restored (removed) after the test
    return calls


def test_an_early_failure_starts_the_same_command_again(execs: list[list[str]]) -> None:
    with pytest.raises(Exec):
        pipeline._start_again_if_early(SystemExit(1), time.monotonic())
    assert execs[0][-3:] == ["worker", "--web-port", "7000"]
    assert pipeline.os.environ[pipeline._ATTEMPT_ENV] == "2"


def test_clean_stops_late_failures_and_the_last_attempt_exit(
    execs: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline._start_again_if_early(SystemExit(0), time.monotonic())
    long_ago = time.monotonic() - pipeline.STARTUP_WINDOW_S - 1
    pipeline._start_again_if_early(SystemExit(1), long_ago)
    monkeypatch.setenv(pipeline._ATTEMPT_ENV, str(pipeline.STARTUP_ATTEMPTS))
    pipeline._start_again_if_early(SystemExit(1), time.monotonic())
    assert execs == []
