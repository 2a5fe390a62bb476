"""The one retry policy of every tokenshare process, built on tenacity.

Every pause is jittered ("full jitter" with a floor): after the n-th failure it is
drawn uniformly from ``[first_s / 2, min(first_s * 2**(n-1), max_s)]``, so a fleet
that lost its broker at the same moment does not come back in step.

Three shapes, one wait strategy (:meth:`RetryPolicy.wait`):

- :func:`retrying`: a ``tenacity.Retrying`` that retries a call on given exceptions,
  bounded by attempts and/or a deadline, logging each retry through ``before_sleep``,
  and interruptible by a ``threading.Event``. Use it as ``retrying(...)(fn, *args)``,
  ``for attempt in retrying(...): with attempt: ...`` or ``@retrying(...).wraps``.
- :func:`async_retrying`: the same as a ``tenacity.AsyncRetrying`` for asyncio code;
  an ``asyncio.Event`` (or task cancellation) interrupts a pause.
- :class:`Backoff`: for loops that do not retry one call but count consecutive
  failures (a consumer re-reading a batch, a sender thread) and need the next pause.

A stop event set while the retrying pauses ends the pause at once and raises
:class:`Interrupted` instead of starting another attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import tenacity
from tenacity import RetryCallState
from tenacity.stop import stop_base
from tenacity.wait import wait_base

__all__ = [
    "Backoff",
    "Hook",
    "Interrupted",
    "RetryCallState",
    "RetryPolicy",
    "async_retrying",
    "log_retry",
    "retrying",
]

#: A tenacity callback that sees the state of the call being retried.
Hook = Callable[[RetryCallState], None]
Errors = type[BaseException] | tuple[type[BaseException], ...]


class Interrupted(Exception):
    """The stop event was set while a retry paused: no further attempt was made."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to pause between attempts: doubling from ``first_s`` up to ``max_s``,
    each pause jittered (see the module docstring)."""

    first_s: float = 0.5
    max_s: float = 10.0

    def __post_init__(self) -> None:
        if self.first_s < 0 or self.max_s < self.first_s:
            raise ValueError(f"need 0 <= first_s <= max_s, got {self.first_s}, {self.max_s}")

    def wait(self) -> wait_base:
        """The tenacity wait strategy every retry shape of this module uses."""
        return tenacity.wait_random_exponential(
            multiplier=self.first_s, max=self.max_s, min=self.first_s / 2
        )

    def ceiling(self, failures: int) -> float:
        """The largest pause after ``failures`` consecutive failures (for messages)."""
        return min(self.first_s * float(2 ** max(failures - 1, 0)), self.max_s)


def log_retry(
    logger: logging.Logger, what: str, *, hint: str = "", level: int = logging.WARNING
) -> Hook:
    """A ``before_sleep`` hook logging ``"<what> (<error>); retrying in <s> s. <hint>"``."""

    def hook(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        reason = (str(error) or type(error).__name__) if error is not None else "no result"
        tail = f". {hint}" if hint else ""
        logger.log(level, "%s (%s); retrying in %.1f s%s", what, reason, state.upcoming_sleep, tail)

    return hook


def retrying(
    policy: RetryPolicy,
    *,
    on: Errors,
    attempts: int | None = None,
    deadline_s: float | None = None,
    stop: threading.Event | None = None,
    log: logging.Logger | None = None,
    what: str = "call failed",
    hint: str = "",
    on_retry: Hook | None = None,
    sleep: Callable[[float], None] | None = None,
) -> tenacity.Retrying:
    """Retry on ``on`` until it succeeds, ``attempts`` ran out or the next pause would
    end past ``deadline_s`` (both None: forever); then the last error is re-raised.

    ``log``/``what``/``hint`` log each retry (see :func:`log_retry`); ``on_retry`` is
    called before each pause too (e.g. to count retries). ``stop`` interrupts a pause
    with :class:`Interrupted`. ``sleep`` replaces the pause itself (tests)."""
    if stop is not None and sleep is None:
        sleep = _event_sleep(stop)
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(on),
        stop=_stop(attempts, deadline_s),
        wait=policy.wait(),
        before=tenacity.before_nothing if stop is None else _refuse_when_set(stop.is_set),
        before_sleep=_before_sleep(log, what, hint, on_retry),
        sleep=sleep or tenacity.nap.sleep,
        reraise=True,
    )


def async_retrying(
    policy: RetryPolicy,
    *,
    on: Errors,
    attempts: int | None = None,
    deadline_s: float | None = None,
    stop: asyncio.Event | None = None,
    log: logging.Logger | None = None,
    what: str = "call failed",
    hint: str = "",
    on_retry: Hook | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> tenacity.AsyncRetrying:
    """:func:`retrying` for coroutines: ``async for attempt in async_retrying(...)``.

    Cancelling the task interrupts a pause as usual (CancelledError is never retried);
    ``stop`` does so with :class:`Interrupted`."""
    if stop is not None and sleep is None:
        sleep = _async_event_sleep(stop)
    return tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception_type(on),
        stop=_stop(attempts, deadline_s),
        wait=policy.wait(),
        before=tenacity.before_nothing if stop is None else _refuse_when_set(stop.is_set),
        before_sleep=_before_sleep(log, what, hint, on_retry),
        sleep=sleep or asyncio.sleep,
        reraise=True,
    )


class Backoff:
    """Consecutive failures of a loop and the pause after the latest one.

    ``pause = backoff.failed()`` after a failure, ``backoff.succeeded()`` after a
    success; the pauses come from the policy's tenacity wait strategy."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.failures = 0
        self._wait = policy.wait()
        # The wait strategy reads only the attempt number of a call state.
        self._state = RetryCallState(tenacity.Retrying(), None, (), {})

    def failed(self) -> float:
        """Count a failure; the seconds to pause before the next try."""
        self.failures += 1
        self._state.attempt_number = self.failures
        return float(self._wait(self._state))

    def succeeded(self) -> None:
        self.failures = 0


def _stop(attempts: int | None, deadline_s: float | None) -> stop_base:
    stop: stop_base = tenacity.stop_never
    if attempts is not None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        stop = stop | tenacity.stop_after_attempt(attempts)
    if deadline_s is not None:
        # Never start a pause that would end past the deadline.
        stop = stop | tenacity.stop_before_delay(deadline_s)
    return stop


def _before_sleep(
    log: logging.Logger | None, what: str, hint: str, on_retry: Hook | None
) -> Hook | None:
    hooks = [h for h in (on_retry, log_retry(log, what, hint=hint) if log else None) if h]
    if not hooks:
        return None

    def before_sleep(state: RetryCallState) -> None:
        for hook in hooks:
            hook(state)

    return before_sleep


def _refuse_when_set(is_set: Callable[[], bool]) -> Hook:
    """A ``before`` hook: no attempt starts once the stop event is set."""

    def before(state: RetryCallState) -> None:
        if is_set():
            raise Interrupted(f"stopped before attempt {state.attempt_number}")

    return before


def _event_sleep(event: threading.Event) -> Callable[[float], None]:
    def sleep(seconds: float) -> None:
        event.wait(seconds)  # returns early when set; the `before` hook then refuses

    return sleep


def _async_event_sleep(event: asyncio.Event) -> Callable[[float], Awaitable[None]]:
    async def sleep(seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=seconds)

    return sleep
