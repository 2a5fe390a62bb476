"""The LiteLLM callback: buffered by size and time, never raising into LiteLLM,
counting what it could not send (against the real broker:
tests/integration/producers/test_adapters_litellm.py)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import pytest

from tests.samples import LITELLM_CALLS, LITELLM_COUNTED
from tokenshare.producers.adapters.litellm import TokenshareCallback, litellm_callback

CALLS, COUNTED = LITELLM_CALLS, LITELLM_COUNTED


class FakeProducer:
    """Records batches; fails the first `failures` sends like an unreachable broker."""

    def __init__(self, failures: int = 0) -> None:
        self.batches: list[list[Mapping[str, Any]]] = []
        self.failures = failures
        self.closed = False

    def send_batch(self, events: Iterable[Mapping[str, Any]], *, validated: bool = False) -> None:
        assert validated
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker unreachable")
        self.batches.append(list(events))

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    @property
    def ids(self) -> list[str]:
        return [str(e["event_id"]) for batch in self.batches for e in batch]


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def call(callback: TokenshareCallback, kwargs: Any) -> None:
    callback.log_success_event(kwargs, None, None, None)


@pytest.fixture
def fake() -> FakeProducer:
    return FakeProducer()


def test_sends_by_size_and_by_time(fake: FakeProducer) -> None:
    by_size = TokenshareCallback(batch_size=2, flush_interval_s=60, producer_factory=lambda: fake)
    for c in COUNTED[:4]:
        call(by_size, c["kwargs"])
    eventually(lambda: len(fake.batches) == 2)  # two full batches, long before 60 s
    assert [len(b) for b in fake.batches] == [2, 2]
    by_size.close()

    later = FakeProducer()
    by_time = TokenshareCallback(
        batch_size=1_000, flush_interval_s=0.1, producer_factory=lambda: later
    )
    call(by_time, COUNTED[0]["kwargs"])
    eventually(lambda: later.ids == ["chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"])
    by_time.close()
    assert later.closed
    assert by_time.stats.sent == 1 and by_time.stats.seen == 1


def test_async_hook_and_skips(fake: FakeProducer) -> None:
    callback = TokenshareCallback(producer_factory=lambda: fake)

    async def gateway() -> None:
        for c in CALLS:
            await callback.async_log_success_event(c["kwargs"], None, None, None)
        await callback.async_log_failure_event({}, None, None, None)

    asyncio.run(gateway())
    assert callback.flush(timeout=5)
    assert sorted(fake.ids) == sorted(c["kwargs"]["standard_logging_object"]["id"] for c in COUNTED)
    assert callback.stats.skipped == 2  # the cache hit and the failure
    callback.close()


def test_never_raises_into_litellm(fake: FakeProducer) -> None:
    callback = TokenshareCallback(producer_factory=lambda: fake)
    bad_payload = {**COUNTED[0]["kwargs"]["standard_logging_object"], "completion_tokens": -1}
    no_time = {"model": 5, "prompt_tokens": 3}
    for kwargs in (None, "x", {}, {"standard_logging_object": bad_payload},
                   {"standard_logging_object": no_time}):  # fmt: skip
        call(callback, kwargs)
    callback.log_success_event(COUNTED[0]["kwargs"], object(), "not a time", 12)
    assert callback.flush(timeout=5)
    assert fake.ids == ["chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"]
    assert callback.stats.invalid == 2 and callback.stats.skipped == 3
    callback.close()


def test_kafka_down_then_back_keeps_events() -> None:
    flaky = FakeProducer(failures=2)
    attempts: list[int] = []

    def factory() -> FakeProducer:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("NoBrokersAvailable")
        return flaky

    callback = TokenshareCallback(batch_size=1, flush_interval_s=0.05, producer_factory=factory)
    for c in COUNTED:
        call(callback, c["kwargs"])
    eventually(lambda: len(flaky.ids) == len(COUNTED), timeout=15)
    assert flaky.ids == [c["kwargs"]["standard_logging_object"]["id"] for c in COUNTED]  # order
    assert callback.stats.errors == 3 and callback.stats.dropped == 0
    assert "ConnectionError" in callback.stats.last_error
    callback.close()


def test_full_buffer_and_close_count_what_is_lost() -> None:
    down = FakeProducer(failures=10**6)
    callback = TokenshareCallback(
        batch_size=1_000, flush_interval_s=60, max_buffered=2, producer_factory=lambda: down
    )
    for c in COUNTED:
        call(callback, c["kwargs"])
    assert callback.stats.dropped == len(COUNTED) - 2
    callback.close(timeout=5)
    assert callback.stats.dropped == len(COUNTED)  # the two buffered: unsendable at close
    callback.close()  # idempotent


@pytest.fixture
def fake_litellm(monkeypatch: pytest.MonkeyPatch) -> Iterator[type]:
    """A stand-in for ``litellm.integrations.custom_logger`` (LiteLLM is not installed)."""

    class CustomLogger:
        def __init__(self, turn_off_message_logging: bool = False, **kwargs: Any) -> None:
            self.turn_off_message_logging = turn_off_message_logging

        def log_success_event(self, *args: Any) -> None:
            raise AssertionError("LiteLLM's no-op must be overridden")

        def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
            pass

    names = ["litellm", "litellm.integrations", "litellm.integrations.custom_logger"]
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules["litellm.integrations.custom_logger"].CustomLogger = CustomLogger  # type: ignore[attr-defined]
    yield CustomLogger


def test_litellm_callback_is_a_custom_logger(fake_litellm: type, fake: FakeProducer) -> None:
    callback = litellm_callback(producer_factory=lambda: fake)
    assert isinstance(callback, fake_litellm)  # what LiteLLM's dispatch checks
    assert isinstance(callback, TokenshareCallback)
    assert callback.turn_off_message_logging is False  # type: ignore[attr-defined]
    callback.log_pre_api_call("gpt-4o", [], {})  # type: ignore[attr-defined]
    call(callback, COUNTED[0]["kwargs"])
    assert callback.flush(timeout=5) and fake.ids == ["chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"]
    callback.close()


def test_without_litellm_the_plain_class() -> None:
    if importlib.util.find_spec("litellm") is not None:
        pytest.skip("LiteLLM is installed here")
    assert type(litellm_callback(producer_factory=FakeProducer)) is TokenshareCallback
