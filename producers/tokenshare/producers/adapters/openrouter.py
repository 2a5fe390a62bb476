"""OpenRouter's per-generation record -> token event.

OpenRouter returns, for every generation, a record at
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
    from_iso,
    label,
    model_slug,
    opaque_user,
    provider_label,
    rfc3339,
    short_text,
    to_event,
    within,
)
from tokenshare.schema.event import SLUG_PATTERN, TokenEvent

_SLUG = re.compile(SLUG_PATTERN)


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
    model = data.get("model")
    # OpenRouter's model ids are slugs already (``google/gemini-2.5-flash:free``).
    slug = model if isinstance(model, str) and _SLUG.match(model) else model_slug(model)
    if slug is None:
        raise MappingError("generation record has no model")
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
