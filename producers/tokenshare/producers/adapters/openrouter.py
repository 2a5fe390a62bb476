"""OpenRouter's usage -> token events: inline, from every chat completion, or
from the per-generation record.

Inline (``chat_completion_event``): every chat completion, and the last chunk
of a stream, carries a ``usage`` object (OpenRouter's "Usage Accounting",
https://openrouter.ai/docs/use-cases/usage-accounting, and the ``ChatResult``
/ ``ChatUsage`` reference of its SDKs,
https://openrouter.ai/docs/sdks/go/api-reference/models/chatresult):
``prompt_tokens`` and ``completion_tokens`` by the model's own tokenizer,
``prompt_tokens_details.cached_tokens`` (read from the cache) and
``cache_write_tokens`` (written to it), ``completion_tokens_details.
reasoning_tokens``, ``cost`` (credits charged), ``cost_details`` and
``is_byok``. With a key of one's own (BYOK) ``cost`` is OpenRouter's fee only
and the provider bills ``cost_details.upstream_inference_cost`` to that key,
so the event's cost is their sum. The completion's ``id`` is the generation
id, so a request mapped both ways is stored once. Samples of these payloads:
tests/data/adapters/openrouter_chat_usage.json.

The generation record: OpenRouter returns, for every generation, a record at
``GET /api/v1/generation?id=<generation id>`` (the ``data`` object of the
response). This module maps that record; fetching it (with the account's API
key) is left to the caller, so that nothing here needs the network.

Token counts: OpenRouter reports two sets. ``native_tokens_*`` are counted by
the model's own tokenizer, which is what the provider billed and what
OpenRouter's public rankings count; ``tokens_*`` are re-counted with one
normalizing tokenizer. Native counts are preferred; the normalized ones are
used only where a native count is missing (null), so a record with neither is
an error rather than a zero.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from tokenshare.producers.adapters.common import (
    EventDoc,
    MappingError,
    as_float,
    as_int,
    compact,
    event_id,
    first,
    from_epoch_seconds,
    from_iso,
    label,
    model_slug,
    opaque_user,
    prompt_and_cache,
    provider_label,
    rfc3339,
    short_text,
    to_event,
    within,
)
from tokenshare.schema.event import SLUG_PATTERN, TokenEvent

_SLUG = re.compile(SLUG_PATTERN)


def chat_completion_event(
    response: Mapping[str, Any],
    *,
    user: Any = None,
    app_id: Any = None,
    latency_ms: int | None = None,
) -> EventDoc:
    """The event document of one chat completion (or the last chunk of a stream,
    the one with ``usage``). `user` and `app_id` are the caller's (the request's
    ``user``, the calling app): the response does not repeat them. Raises
    MappingError naming what is missing."""
    usage = response.get("usage")
    if not isinstance(usage, Mapping):
        raise MappingError(
            "chat completion has no usage object (a stream's usage is in its last chunk)"
        )
    ident = event_id(response.get("id"))
    if ident is None:
        raise MappingError("chat completion has no id")
    created = from_epoch_seconds(response.get("created"))
    if created is None:
        raise MappingError(f"created is not a unix time: {response.get('created')!r}")
    prompt = _usage_count(usage, "prompt_tokens")
    completion = _usage_count(usage, "completion_tokens")
    prompt_details = _details(usage, "prompt_tokens_details")
    prompt, cached, written = prompt_and_cache(
        prompt,
        as_int(prompt_details.get("cached_tokens")),
        as_int(prompt_details.get("cache_write_tokens")),
    )
    reasoning = as_int(_details(usage, "completion_tokens_details").get("reasoning_tokens"))
    choices = response.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    return compact(
        {
            "event_id": ident,
            "ts": rfc3339(created),
            "model": _slug(response.get("model"), "chat completion"),
            "provider": provider_label(response.get("provider")),
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "reasoning_tokens": within(reasoning, completion),
            "cached_tokens": cached,
            "cache_creation_tokens": written,
            "cost_usd": usage_cost(usage),
            "app_id": short_text(app_id),
            "user_id": opaque_user(user),
            "finish_reason": label(
                choice.get("finish_reason") if isinstance(choice, Mapping) else None
            ),
            "latency_ms": latency_ms,
            "streamed": response.get("object") == "chat.completion.chunk",
        }
    )


def chat_completion_token_event(response: Mapping[str, Any], **caller: Any) -> TokenEvent:
    """``chat_completion_event``, validated against the contract."""
    return to_event(chat_completion_event(response, **caller))


def usage_cost(usage: Mapping[str, Any]) -> float | None:
    """What the request cost in USD: ``cost``, plus the provider's bill
    (``cost_details.upstream_inference_cost``) when the key was the caller's own."""
    cost = as_float(usage.get("cost"))
    if usage.get("is_byok") is True:
        upstream = as_float(_details(usage, "cost_details").get("upstream_inference_cost"))
        if upstream is not None:
            return (cost or 0.0) + upstream
    return cost


def _usage_count(usage: Mapping[str, Any], key: str) -> int:
    count = as_int(usage.get(key))
    if count is None:
        raise MappingError(f"usage.{key} is missing or not a whole number: {usage.get(key)!r}")
    return count


def _details(usage: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = usage.get(key)
    return value if isinstance(value, Mapping) else {}


def _slug(model: Any, what: str) -> str:
    """OpenRouter's model ids are slugs already (``google/gemini-2.5-flash:free``)."""
    slug = model if isinstance(model, str) and _SLUG.match(model) else model_slug(model)
    if slug is None:
        raise MappingError(f"{what} has no model")
    return slug


def generation_event(record: Mapping[str, Any]) -> EventDoc:
    """The event document of one generation record (or of the whole ``{"data": ...}``
    response). Raises MappingError naming what is missing."""
    data = record.get("data", record)
    if not isinstance(data, Mapping):
        raise MappingError("expected the generation record (the response's data object)")
    ident = event_id(data.get("id"))
    if ident is None:
        raise MappingError("generation record has no id")
    created = from_iso(data.get("created_at"))
    if created is None:
        raise MappingError(f"created_at is not an ISO 8601 time: {data.get('created_at')!r}")
    prompt = _count(data, "native_tokens_prompt", "tokens_prompt")
    completion = _count(data, "native_tokens_completion", "tokens_completion")
    slug = _slug(data.get("model"), "generation record")
    return compact(
        {
            "event_id": ident,
            "ts": rfc3339(created),
            "model": slug,
            "provider": provider_label(data.get("provider_name")),
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "reasoning_tokens": within(as_int(data.get("native_tokens_reasoning")), completion),
            "cached_tokens": within(as_int(data.get("native_tokens_cached")), prompt),
            "cost_usd": first(as_float(data.get("total_cost")), as_float(data.get("usage"))),
            "app_id": _app(data),
            "user_id": opaque_user(data.get("external_user")),
            "finish_reason": label(data.get("finish_reason")),
            "latency_ms": _latency(data),
            "streamed": data.get("streamed") if isinstance(data.get("streamed"), bool) else None,
        }
    )


def generation_token_event(record: Mapping[str, Any]) -> TokenEvent:
    """``generation_event``, validated against the contract."""
    return to_event(generation_event(record))


def _count(data: Mapping[str, Any], native: str, normalized: str) -> int:
    for key in (native, normalized):
        if data.get(key) is not None:
            count = as_int(data[key])
            if count is None:
                raise MappingError(f"{key} is not a whole number: {data[key]!r}")
            return count
    raise MappingError(f"generation record has neither {native} nor {normalized}")


def _app(data: Mapping[str, Any]) -> str | None:
    """OpenRouter's numeric app id, else the host of the request's origin (referer)."""
    app_id = data.get("app_id")
    if app_id is not None and not isinstance(app_id, bool):
        return short_text(app_id)
    for key in ("origin", "http_referer"):
        origin = data.get(key)
        if isinstance(origin, str) and origin.strip():
            return short_text(urlsplit(origin.strip()).hostname or origin)
    return None


def _latency(data: Mapping[str, Any]) -> int | None:
    """Milliseconds: ``latency`` (request to last token), else ``generation_time``."""
    for key in ("latency", "generation_time"):
        millis = as_int(data.get(key))
        if millis is not None and 0 <= millis <= 3_600_000:
            return millis
    return None
