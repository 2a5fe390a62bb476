"""LiteLLM -> token events: a logging callback for the LiteLLM SDK and proxy.

LiteLLM builds, for every call, a "standard logging payload"
(``kwargs["standard_logging_object"]``: id, model, provider, token counts,
cost, times, key/team/user metadata, the usage object) and hands it to its
callbacks. ``TokenshareCallback`` maps that payload to a token event and sends
it to the events topic with ``EventProducer`` (acks=all, idempotent).

LiteLLM is not a dependency of tokenshare, so nothing here imports it at module
level: the class implements LiteLLM's ``CustomLogger`` interface by its method
names (``log_success_event``, ``async_log_success_event`` and the failure
twins). LiteLLM, however, only calls callback *objects* that are instances of
its ``CustomLogger`` class, so use ``litellm_callback()``, which adds that base
class when LiteLLM is importable::

    # custom_callbacks.py, next to the proxy's config.yaml
    from tokenshare.producers.adapters.litellm import litellm_callback
    proxy_handler_instance = litellm_callback()

    # config.yaml
    litellm_settings:
      callbacks: custom_callbacks.proxy_handler_instance

    # or in the SDK
    litellm.callbacks = [litellm_callback()]

The callback never raises into LiteLLM and never blocks its event loop: the
callback methods only map and append to a bounded in-memory buffer; a
background thread sends the buffer as JSON-array messages when it holds
``batch_size`` events or every ``flush_interval_s``. Errors are logged
(rate-limited) and counted in ``stats``; while Kafka is unreachable the buffer
keeps up to ``max_buffered`` events and counts what it had to drop.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tokenshare.producers.adapters.common import (
    EventDoc,
    MappingError,
    as_float,
    as_int,
    compact,
    event_id,
    first,
    from_datetime,
    from_epoch_seconds,
    label,
    latency_ms,
    model_slug,
    opaque_user,
    prompt_and_cache,
    provider_label,
    rfc3339,
    short_text,
    to_event,
    within,
)
from tokenshare.retry import Backoff, RetryPolicy
from tokenshare.settings import Settings

log = logging.getLogger(__name__)

#: Pauses of the sender thread while Kafka does not take a batch.
SEND_BACKOFF = RetryPolicy(first_s=0.5, max_s=30.0)

#: Log the first few problems of a kind, then one in this many (a broken
#: deployment must not flood the gateway's logs).
_LOG_EVERY = 1_000


# --- mapping ---------------------------------------------------------------------------


def standard_payload_event(
    payload: Mapping[str, Any],
    *,
    response_obj: Any = None,
    call_id: Any = None,
    start_time: Any = None,
    end_time: Any = None,
) -> EventDoc | None:
    """The event document of one LiteLLM standard logging payload.

    None when the call is not tokens a provider served: a failed call, a cache
    hit (LiteLLM answered from its own cache), or a call without token counts
    (image generation, moderation). Raises MappingError when the payload lacks
    what every event needs (an id, a time, a model)."""
    if payload.get("status") not in (None, "success") or payload.get("cache_hit") is True:
        return None
    metadata = _mapping(payload.get("metadata"))
    usage = _usage(payload, metadata, response_obj)
    prompt = as_int(first(payload.get("prompt_tokens"), _field(usage, "prompt_tokens")))
    completion = as_int(first(payload.get("completion_tokens"), _field(usage, "completion_tokens")))
    if not prompt and not completion:
        return None
    prompt, completion = prompt or 0, completion or 0
    start = from_epoch_seconds(payload.get("startTime")) or from_datetime(start_time)
    end = from_epoch_seconds(payload.get("endTime")) or from_datetime(end_time)
    if start is None:
        raise MappingError("payload has no startTime: the event time is unknown")
    hidden = _mapping(payload.get("hidden_params"))
    provider = first(payload.get("custom_llm_provider"), hidden.get("custom_llm_provider"))
    model = model_slug(first(payload.get("model"), hidden.get("litellm_model_name")), provider)
    if model is None:
        raise MappingError("payload has no model")
    ident = event_id(payload.get("id"), call_id)
    if ident is None:
        raise MappingError("payload has no id (nor litellm_call_id)")
    choice = _first_choice(payload.get("response"), response_obj)
    # Anthropic's usage, as LiteLLM passes it on, names the cache parts apart.
    prompt, cached, cache_creation = prompt_and_cache(
        prompt,
        first(
            as_int(_field(_field(usage, "prompt_tokens_details"), "cached_tokens")),
            as_int(_field(usage, "cache_read_input_tokens")),
        ),
        first(
            as_int(_field(_field(usage, "prompt_tokens_details"), "cache_creation_tokens")),
            as_int(_field(usage, "cache_creation_input_tokens")),
        ),
    )
    return compact(
        {
            "event_id": ident,
            "ts": rfc3339(start),
            "model": model,
            "provider": provider_label(provider),
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "reasoning_tokens": within(
                as_int(_field(_field(usage, "completion_tokens_details"), "reasoning_tokens")),
                completion,
            ),
            "cached_tokens": cached,
            "cache_creation_tokens": cache_creation,
            "cost_usd": as_float(payload.get("response_cost")),
            "app_id": short_text(metadata.get("user_api_key_team_id")),
            "user_id": opaque_user(
                first(metadata.get("user_api_key_user_id"), payload.get("end_user") or None)
            ),
            "finish_reason": label(_field(choice, "finish_reason")),
            "tool_calls": _tool_calls(choice),
            "latency_ms": latency_ms(start, end),
            "streamed": payload.get("stream") if isinstance(payload.get("stream"), bool) else None,
        }
    )


def _field(obj: Any, key: str) -> Any:
    """obj[key] of a mapping, obj.key of an object (LiteLLM's Usage, ModelResponse)."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _usage(payload: Mapping[str, Any], metadata: Mapping[str, Any], response_obj: Any) -> Any:
    """The call's usage object: where LiteLLM versions put it, first found wins."""
    hidden = _mapping(payload.get("hidden_params"))
    return first(
        metadata.get("usage_object"),
        hidden.get("usage_object"),
        _field(payload.get("response"), "usage"),
        _field(response_obj, "usage"),
    )


def _first_choice(response: Any, response_obj: Any) -> Any:
    for source in (response, response_obj):
        choices = _field(source, "choices")
        if isinstance(choices, list | tuple) and choices:
            return choices[0]
    return None


def _tool_calls(choice: Any) -> int | None:
    calls = _field(_field(choice, "message"), "tool_calls")
    return len(calls) if isinstance(calls, list | tuple) else None


# --- the callback ----------------------------------------------------------------------


class Producer(Protocol):
    """What the callback needs of a producer (EventProducer has it)."""

    def send_batch(self, events: Iterable[Mapping[str, Any]], *, validated: bool = False) -> None:
        """Queue events as one message; may raise when Kafka is unreachable."""

    def flush(self, timeout: float | None = None) -> None:
        """Wait for queued messages to be acknowledged."""

    def close(self) -> None:
        """Flush and release connections."""


@dataclass(slots=True)
class CallbackStats:
    seen: int = 0  # success callbacks received
    skipped: int = 0  # failures, cache hits, calls without tokens
    invalid: int = 0  # payloads that could not become a valid event
    sent: int = 0  # events handed to the producer
    acked: int = 0  # events the broker acknowledged
    dropped: int = 0  # events lost: buffer full, or unsendable at close
    errors: int = 0  # producer errors and unexpected exceptions
    last_error: str = ""


class TokenshareCallback:
    """LiteLLM's CustomLogger interface, duck-typed; see the module docstring."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        batch_size: int = 200,
        flush_interval_s: float = 1.0,
        max_buffered: int = 50_000,
        producer_factory: Callable[[], Producer] | None = None,
    ) -> None:
        self.stats = CallbackStats()
        self._stats_lock = threading.Lock()
        self._settings = settings
        self._batch_size = max(batch_size, 1)
        self._interval = flush_interval_s
        self._max_buffered = max_buffered
        self._factory = producer_factory or self._event_producer
        self._producer: Producer | None = None
        self._buffer: deque[EventDoc] = deque()
        self._inflight = 0
        self._cond = threading.Condition()
        self._flush_now = False
        self._closing = False
        self._thread: threading.Thread | None = None
        atexit.register(self.close)  # the gateway exiting still sends what it buffered

    # LiteLLM's interface ------------------------------------------------------------
    def log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._record(kwargs, response_obj, start_time, end_time)

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._record(kwargs, response_obj, start_time, end_time)  # no I/O: safe on the loop

    def log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """Failed calls are not counted: no provider served their tokens."""

    async def async_log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """Failed calls are not counted: no provider served their tokens."""

    # buffering ------------------------------------------------------------------------
    def _record(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        try:
            self._count("seen")
            args = _mapping(kwargs)
            payload = args.get("standard_logging_object")
            if not isinstance(payload, Mapping):
                self._warn(
                    self._count("skipped"),
                    "LiteLLM passed no standard_logging_object: upgrade LiteLLM "
                    "to a version that builds the standard logging payload",
                )
                return
            doc = standard_payload_event(
                payload,
                response_obj=response_obj,
                call_id=args.get("litellm_call_id"),
                start_time=start_time,
                end_time=end_time,
            )
            if doc is None:
                self._count("skipped")
                return
            to_event(doc)  # validate here: one bad payload must not fail a batch
            self._enqueue(doc)
        except MappingError as exc:
            count = self._count("invalid")
            self._warn(count, f"LiteLLM call not sent to tokenshare: {exc}")
        except Exception as exc:  # never into LiteLLM
            self._error(exc)

    def _enqueue(self, doc: EventDoc) -> None:
        with self._cond:
            if len(self._buffer) >= self._max_buffered:
                self._warn(
                    self._count("dropped"),
                    f"tokenshare buffer full ({self._max_buffered} events): dropping; "
                    "check that Kafka is reachable",
                )
                return
            self._buffer.append(doc)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="tokenshare-litellm", daemon=True
                )
                self._thread.start()
            if len(self._buffer) >= self._batch_size:
                self._cond.notify_all()

    def _run(self) -> None:
        """The sender thread: a batch when full, else whatever is there every interval."""
        backoff = Backoff(SEND_BACKOFF)
        while True:
            with self._cond:
                self._cond.wait_for(self._should_send, timeout=self._interval)
                if not self._buffer and (self._closing or self._flush_now):
                    self._flush_now = False
                    self._cond.notify_all()
                    if self._closing:
                        return
                    continue
                size = min(len(self._buffer), self._batch_size)
                batch = [self._buffer.popleft() for _ in range(size)]
                self._inflight = len(batch)
                closing = self._closing
            sent = not batch or self._send(batch)
            with self._cond:
                self._inflight = 0
                if not sent and closing:  # last chance gone: count, never hang the exit
                    self._count("dropped", len(batch) + len(self._buffer))
                    self._buffer.clear()
                elif not sent:
                    self._buffer.extendleft(reversed(batch))  # keep the order, retry
                self._cond.notify_all()
                if sent:
                    backoff.succeeded()
                else:  # Kafka unreachable: wait, but wake up for close()
                    self._cond.wait_for(lambda: self._closing, timeout=backoff.failed())

    def _should_send(self) -> bool:
        return self._closing or self._flush_now or len(self._buffer) >= self._batch_size

    def _send(self, batch: list[EventDoc]) -> bool:
        try:
            if self._producer is None:
                self._producer = self._factory()
                # atexit runs last-registered first: ours must run before the Kafka
                # client's own exit hook closes it under our buffered events.
                atexit.unregister(self.close)
                atexit.register(self.close)
            self._producer.send_batch(batch, validated=True)
        except Exception as exc:
            self._error(exc)
            return False
        self._count("sent", len(batch))
        return True

    # lifecycle ------------------------------------------------------------------------
    def flush(self, timeout: float = 30.0) -> bool:
        """Send everything buffered and wait for the broker's acks. True when done."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._thread is None:
                return True
            self._flush_now = True
            self._cond.notify_all()
            done = self._cond.wait_for(
                lambda: not self._buffer and not self._inflight, timeout=timeout
            )
        if self._producer is not None:
            try:
                self._producer.flush(timeout=max(deadline - time.monotonic(), 0.1))
            except Exception as exc:
                self._error(exc)
                return False
        return done

    def close(self, timeout: float = 30.0) -> None:
        """Send what is buffered (once more), then close the producer. Idempotent."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        if self._producer is not None:
            try:
                self._producer.close()
            except Exception as exc:
                self._error(exc)

    def _event_producer(self) -> Producer:
        from tokenshare.producers.kafka_producer import EventProducer

        settings = self._settings or Settings()
        # Bounded blocking: an unreachable broker fails a send in 10 s, and the
        # batch is retried, instead of holding the sender thread for a minute.
        return EventProducer(settings, on_ack=self._acked, max_block_ms=10_000)

    def _acked(self, ids: list[str]) -> None:
        self._count("acked", len(ids))

    def _count(self, name: str, n: int = 1) -> int:
        """Counters are bumped from LiteLLM's threads, its loop and Kafka's sender."""
        with self._stats_lock:
            value: int = getattr(self.stats, name) + n
            setattr(self.stats, name, value)
            return value

    def _error(self, exc: BaseException) -> None:
        count = self._count("errors")
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        self._warn(count, f"tokenshare callback error: {self.stats.last_error}")

    @staticmethod
    def _warn(count: int, message: str) -> None:
        if count <= 5 or count % _LOG_EVERY == 0:
            log.warning("%s (occurrence %d)", message, count)


def litellm_callback(settings: Settings | None = None, **options: Any) -> TokenshareCallback:
    """A TokenshareCallback that LiteLLM will call.

    LiteLLM dispatches only to instances of its ``CustomLogger``; when LiteLLM
    is importable the returned object's class also derives from it (LiteLLM's
    no-op hooks fill whatever this class does not define). Without LiteLLM the
    plain class is returned, which is what tests and other callers need."""
    try:
        module = importlib.import_module("litellm.integrations.custom_logger")
    except ImportError:
        return TokenshareCallback(settings, **options)
    base: Any = module.CustomLogger

    def __init__(self: TokenshareCallback, *args: Any, **kwargs: Any) -> None:
        base.__init__(self)  # LiteLLM's own attributes first (message logging flags, ...)
        TokenshareCallback.__init__(self, *args, **kwargs)

    cls = type("TokenshareCustomLogger", (TokenshareCallback, base), {"__init__": __init__})
    callback: TokenshareCallback = cls(settings, **options)
    return callback
