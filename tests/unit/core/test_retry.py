"""tokenshare.retry: jittered pauses, stop conditions, and a stop event ending a pause."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from tokenshare.retry import Backoff, Interrupted, RetryPolicy, async_retrying, retrying


class Flaky:
    """Fails `failures` times with `error`, then returns the number of calls."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return self.calls


def test_backoff_pauses_stay_within_the_jittered_window() -> None:
    policy = RetryPolicy(first_s=0.5, max_s=8.0)
    backoff = Backoff(policy)
    for failures in range(1, 12):
        pause = backoff.failed()
        assert backoff.failures == failures
        assert policy.first_s / 2 <= pause <= policy.ceiling(failures)
    assert policy.ceiling(11) == 8.0
    backoff.succeeded()
    assert backoff.failures == 0
    assert backoff.failed() <= policy.first_s


def test_backoffs_of_a_fleet_do_not_pause_in_step() -> None:
    policy = RetryPolicy(first_s=1.0, max_s=30.0)
    fleet = [Backoff(policy) for _ in range(50)]
    for _ in range(6):  # past the cap: pauses must still differ between processes
        pauses = {b.failed() for b in fleet}
    assert len(pauses) > 1
    assert all(0.5 <= p <= 30.0 for p in pauses)


def test_policy_rejects_a_cap_below_the_first_pause() -> None:
    with pytest.raises(ValueError, match="first_s <= max_s"):
        RetryPolicy(first_s=2.0, max_s=1.0)


def test_retrying_retries_the_named_errors_until_success() -> None:
    pauses: list[float] = []
    call = Flaky(3)
    result = retrying(RetryPolicy(0.2, 1.0), on=ConnectionError, sleep=pauses.append)(call)
    assert result == 4
    assert len(pauses) == 3
    assert all(0.1 <= p <= 1.0 for p in pauses)


def test_other_errors_are_not_retried() -> None:
    call = Flaky(1, error=KeyError)
    with pytest.raises(KeyError):
        retrying(RetryPolicy(), on=ConnectionError, sleep=lambda _: None)(call)
    assert call.calls == 1


def test_attempts_bound_the_calls_and_the_last_error_is_raised() -> None:
    call = Flaky(10)
    with pytest.raises(ConnectionError, match="failure 3"):
        retrying(RetryPolicy(), on=ConnectionError, attempts=3, sleep=lambda _: None)(call)
    assert call.calls == 3


def test_a_deadline_never_starts_a_pause_that_ends_past_it() -> None:
    pauses: list[float] = []
    call = Flaky(10)
    # Every pause is at least 5 s: none fits in a 1 s deadline.
    with pytest.raises(ConnectionError, match="failure 1"):
        retrying(RetryPolicy(10.0, 20.0), on=ConnectionError, deadline_s=1.0, sleep=pauses.append)(
            call
        )
    assert call.calls == 1
    assert pauses == []


def test_each_retry_is_logged_with_what_failed_and_the_pause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("tokenshare.test_retry")
    seen: list[int] = []
    with caplog.at_level(logging.WARNING, logger=log.name):
        retrying(
            RetryPolicy(0.2, 1.0),
            on=ConnectionError,
            log=log,
            what="broker not reachable",
            hint="start it",
            on_retry=lambda state: seen.append(state.attempt_number),
            sleep=lambda _: None,
        )(Flaky(2))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("broker not reachable (failure 1); retrying in ")
    assert messages[0].endswith(" s. start it")
    assert seen == [1, 2]


def test_a_stop_event_ends_a_pause_and_no_further_attempt_starts() -> None:
    stop = threading.Event()
    call = Flaky(10)
    # The first pause is at least 30 s; the event is set as soon as it begins.
    policy = RetryPolicy(60.0, 120.0)
    timer = threading.Timer(0.05, stop.set)
    timer.start()
    try:
        with pytest.raises(Interrupted):
            retrying(policy, on=ConnectionError, stop=stop)(call)
    finally:
        timer.cancel()
    assert call.calls == 1


def test_a_set_stop_event_refuses_the_first_attempt() -> None:
    stop = threading.Event()
    stop.set()
    call = Flaky(0)
    with pytest.raises(Interrupted):
        retrying(RetryPolicy(), on=ConnectionError, stop=stop)(call)
    assert call.calls == 0


def test_async_retrying_retries_until_success() -> None:
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    async def run() -> int:
        call = Flaky(2)
        async for attempt in async_retrying(
            RetryPolicy(0.2, 1.0), on=ConnectionError, attempts=5, sleep=sleep
        ):
            with attempt:
                return call()
        raise AssertionError("unreachable: the last error is re-raised")

    assert asyncio.run(run()) == 3
    assert len(pauses) == 2


def test_an_asyncio_stop_event_ends_a_pause() -> None:
    call = Flaky(10)

    async def run() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, stop.set)
        async for attempt in async_retrying(
            RetryPolicy(60.0, 120.0), on=ConnectionError, stop=stop
        ):
            with attempt:
                call()

    with pytest.raises(Interrupted):
        asyncio.run(run())
    assert call.calls == 1


def test_cancelling_the_task_ends_a_pause_and_is_not_retried() -> None:
    call = Flaky(10)

    async def retry_forever() -> None:
        async for attempt in async_retrying(RetryPolicy(60.0, 120.0), on=Exception):
            with attempt:
                call()

    async def run() -> None:
        task = asyncio.create_task(retry_forever())
        while call.calls == 0:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert call.calls == 1
