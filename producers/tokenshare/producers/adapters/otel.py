"""OpenTelemetry GenAI spans -> token events.

Instrumented LLM clients (OpenTelemetry's own instrumentations, OpenLLMetry,
the Vercel AI SDK, ...) already record a span per model call with the GenAI
semantic conventions: model, provider, token usage, finish reasons, times.
This module maps such spans to events, either from the OTLP/HTTP JSON encoding
(``parse_export``, what the ingest endpoint's OTLP route receives) or from a
plain attribute mapping (``span_event``, for an exporter inside a process).

Which spans count:

- a span without any ``gen_ai.*`` attribute is not an LLM call: *ignored*;
- a GenAI span without token usage, or an agent/tool span (``invoke_agent``,
  ``create_agent``, ``execute_tool``, whose usage, when present, sums the model
  calls below it and would count them twice), is *skipped*;
- a GenAI span with usage that still cannot be an event (no model, a count out
  of range) is *rejected*, with the reason.

Both older and current attribute names are read (``gen_ai.usage.prompt_tokens``
before ``input_tokens``; ``gen_ai.system`` before ``gen_ai.provider.name``);
see README.md in this folder for the whole table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from tokenshare.producers.adapters.common import (
    EventDoc,
    MappingError,
    as_float,
    as_int,
    compact,
    event_id,
    first,
    from_unix_nanos,
    label,
    latency_ms,
    model_slug,
    opaque_user,
    provider_label,
    rfc3339,
    short_text,
    to_event,
    within,
)
from tokenshare.schema.event import TokenEvent

INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
CACHED_TOKENS = (
    "gen_ai.usage.cache_read.input_tokens",  # semantic conventions (current)
    "gen_ai.usage.cache_read_input_tokens",  # earlier spelling, OpenLLMetry
    "gen_ai.usage.input_tokens.cached",  # Sentry
)
REASONING_TOKENS = (
    "gen_ai.usage.reasoning.output_tokens",  # semantic conventions (current)
    "gen_ai.usage.output_tokens.reasoning",  # Sentry
    "gen_ai.usage.reasoning_tokens",  # OpenLLMetry
)
PROVIDER = ("gen_ai.provider.name", "gen_ai.system")
MODEL = ("gen_ai.response.model", "gen_ai.request.model")
USER = ("user.id", "enduser.id")
STREAMED = ("gen_ai.request.stream", "gen_ai.response.streaming", "llm.is_streaming")
#: OpenAI-compatible endpoints by host. The OpenAI SDK's instrumentation reports
#: ``openai`` whichever endpoint it calls; the conventions point to
#: ``server.address`` for the actual provider.
OPENAI_COMPATIBLE_HOSTS = {
    "api.deepseek.com": "deepseek", "openrouter.ai": "openrouter", "api.groq.com": "groq",
    "api.together.xyz": "together_ai", "api.fireworks.ai": "fireworks_ai",
    "api.mistral.ai": "mistral_ai", "api.x.ai": "x_ai", "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "gcp.gemini", "api.moonshot.ai": "moonshot",
    "api.perplexity.ai": "perplexity", "dashscope.aliyuncs.com": "dashscope",
    "dashscope-intl.aliyuncs.com": "dashscope", "api.cerebras.ai": "cerebras",
    "api.deepinfra.com": "deepinfra",
}  # fmt: skip
#: Operations whose spans are not one model call (see the module docstring).
AGGREGATE_OPERATIONS = frozenset({"invoke_agent", "create_agent", "execute_tool"})


class OtlpError(ValueError):
    """The request is not an OTLP/HTTP JSON ExportTraceServiceRequest."""


@dataclass(frozen=True, slots=True)
class RejectedSpan:
    trace_id: str
    span_id: str
    reason: str


@dataclass(slots=True)
class OtlpBatch:
    """What one export request held."""

    events: list[TokenEvent] = field(default_factory=list)
    rejected: list[RejectedSpan] = field(default_factory=list)
    ignored: int = 0  # spans without gen_ai attributes
    skipped: int = 0  # GenAI spans without token usage
    aggregates: int = 0  # agent and tool spans (not one model call)
    spans: int = 0


# --- OTLP/HTTP JSON ------------------------------------------------------------------


def parse_export_json(body: bytes) -> OtlpBatch:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OtlpError(f"body is not valid JSON: {exc}") from None
    return parse_export(doc)


def parse_export(doc: Any) -> OtlpBatch:
    """Map every span of an ExportTraceServiceRequest (JSON encoding).

    Shape: ``resourceSpans[].scopeSpans[].spans[]``; attributes are lists of
    ``{key, value: AnyValue}``; times are unix nanoseconds (strings or numbers);
    trace and span ids are hex strings."""
    if not isinstance(doc, Mapping):
        raise OtlpError("expected a JSON object with resourceSpans (ExportTraceServiceRequest)")
    batch = OtlpBatch()
    for resource_spans in _list(doc, "resourceSpans"):
        resource = attributes(_get(resource_spans, "resource", {}).get("attributes"))
        for scope_spans in _list(resource_spans, "scopeSpans"):
            for span in _list(scope_spans, "spans"):
                batch.spans += 1
                _add_span(batch, span, resource)
    return batch


def _add_span(batch: OtlpBatch, span: Mapping[str, Any], resource: Mapping[str, Any]) -> None:
    attrs = attributes(span.get("attributes"))
    if attrs.get("gen_ai.operation.name") in AGGREGATE_OPERATIONS:
        batch.aggregates += 1
        return
    trace_id = str(span.get("traceId") or "")
    span_id = str(span.get("spanId") or "")
    try:
        doc = span_event(
            attrs,
            trace_id=trace_id,
            span_id=span_id,
            start=from_unix_nanos(span.get("startTimeUnixNano")),
            end=from_unix_nanos(span.get("endTimeUnixNano")),
            resource=resource,
        )
    except MappingError as exc:
        batch.rejected.append(RejectedSpan(trace_id, span_id, str(exc)))
        return
    if doc is None:
        if any(key.startswith("gen_ai.") for key in attrs):
            batch.skipped += 1
        else:
            batch.ignored += 1
        return
    try:
        batch.events.append(to_event(doc))
    except MappingError as exc:
        batch.rejected.append(RejectedSpan(trace_id, span_id, str(exc)))


def attributes(items: Any) -> dict[str, Any]:
    """``[{key, value: AnyValue}]`` -> ``{key: python value}``; malformed items are dropped."""
    result: dict[str, Any] = {}
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        return result
    for item in items:
        if isinstance(item, Mapping) and isinstance(item.get("key"), str):
            result[item["key"]] = any_value(item.get("value"))
    return result


def any_value(value: Any) -> Any:
    """One OTLP AnyValue. intValue is a 64-bit integer, encoded as a string in JSON."""
    if not isinstance(value, Mapping):
        return None
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return as_int(value["intValue"])
    if "doubleValue" in value:
        return as_float(value["doubleValue"])
    if "boolValue" in value:
        return value["boolValue"] if isinstance(value["boolValue"], bool) else None
    if "arrayValue" in value:
        return [any_value(v) for v in _list(value["arrayValue"], "values")]
    if "kvlistValue" in value:
        return attributes(_get(value, "kvlistValue", {}).get("values"))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def _get(doc: Any, key: str, default: Mapping[str, Any]) -> Mapping[str, Any]:
    value = doc.get(key) if isinstance(doc, Mapping) else None
    return value if isinstance(value, Mapping) else default


def _list(doc: Any, key: str) -> list[Any]:
    value = doc.get(key) if isinstance(doc, Mapping) else None
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


# --- one span ------------------------------------------------------------------------


def span_event(
    attrs: Mapping[str, Any],
    *,
    trace_id: str,
    span_id: str,
    start: datetime | None,
    end: datetime | None,
    resource: Mapping[str, Any] | None = None,
) -> EventDoc | None:
    """The event document of one span, or None when the span is not a counted model
    call. Raises MappingError for a GenAI span with usage that cannot be an event."""
    operation = attrs.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation in AGGREGATE_OPERATIONS:
        return None
    prompt = _tokens(attrs, INPUT_TOKENS)
    completion = _tokens(attrs, OUTPUT_TOKENS)
    if prompt is None and completion is None:
        return None
    prompt, completion = prompt or 0, completion or 0
    provider = _provider(attrs)
    model = model_slug(_text(attrs, MODEL), provider)
    if model is None:
        raise MappingError("span has token usage but no gen_ai.request.model/response.model")
    if start is None:
        raise MappingError("span has no startTimeUnixNano: the event time is unknown")
    ident = event_id(attrs.get("gen_ai.response.id"), _span_key(trace_id, span_id))
    if ident is None:
        raise MappingError("span has neither gen_ai.response.id nor traceId/spanId")
    resource = resource or {}
    return compact(
        {
            "event_id": ident,
            "ts": rfc3339(start),
            "model": model,
            "provider": provider_label(provider),
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "reasoning_tokens": within(_tokens(attrs, REASONING_TOKENS), completion),
            "cached_tokens": within(_tokens(attrs, CACHED_TOKENS), prompt),
            "app_id": short_text(resource.get("service.name")),
            "user_id": opaque_user(first(*(attrs.get(k) for k in USER), resource.get("user.id"))),
            "finish_reason": label(_first_item(attrs.get("gen_ai.response.finish_reasons"))),
            "latency_ms": latency_ms(start, end),
            "streamed": next((v for k in STREAMED if isinstance(v := attrs.get(k), bool)), None),
        }
    )


def span_token_event(attrs: Mapping[str, Any], **span: Any) -> TokenEvent | None:
    """``span_event``, validated: the TokenEvent, None, or MappingError."""
    doc = span_event(attrs, **span)
    return None if doc is None else to_event(doc)


def _tokens(attrs: Mapping[str, Any], keys: Sequence[str]) -> int | None:
    for key in keys:
        if key in attrs and attrs[key] is not None:
            count = as_int(attrs[key])
            if count is None:
                raise MappingError(f"{key} is not a whole number: {attrs[key]!r}")
            return count
    return None


def _text(attrs: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    for key in keys:
        value = attrs.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _provider(attrs: Mapping[str, Any]) -> str | None:
    """gen_ai.provider.name (or gen_ai.system); for ``openai`` pointed at a known
    OpenAI-compatible host (``server.address``), that host's provider."""
    provider = _text(attrs, PROVIDER)
    host = _text(attrs, ("server.address",))
    if host is None or provider not in (None, "openai"):
        return provider
    host = host.lower()
    if host.endswith(".openai.azure.com"):
        return "azure.ai.openai"
    if host == "api.openai.com" or host.endswith(".openai.com"):
        return provider
    return OPENAI_COMPATIBLE_HOSTS.get(host, provider or host)


def _first_item(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _span_key(trace_id: str, span_id: str) -> str | None:
    if not trace_id or not span_id:
        return None
    return f"{trace_id.lower()}:{span_id.lower()}"


# --- the OTLP response -----------------------------------------------------------------


def export_response(batch: OtlpBatch) -> dict[str, Any]:
    """ExportTraceServiceResponse (JSON) for an accepted request.

    The spec: ``partialSuccess.rejectedSpans`` counts rejected spans (an int64,
    a decimal string in proto3 JSON) with an ``errorMessage``; a fully accepted
    request may still carry a warning, with rejectedSpans 0. Non-GenAI spans are
    not rejected (a shared exporter sends them all), nor are agent and tool
    spans; GenAI spans without usage are reported as a warning, because they
    usually mean an instrumentation that does not record usage (streaming
    without usage, for instance)."""
    partial: dict[str, Any] = {}
    messages = [f"span {r.trace_id}:{r.span_id}: {r.reason}" for r in batch.rejected[:5]] + (
        [f"(+{len(batch.rejected) - 5} more)"] if len(batch.rejected) > 5 else []
    )
    if batch.rejected:
        partial["rejectedSpans"] = str(len(batch.rejected))
    if batch.skipped:
        messages.append(
            f"{batch.skipped} GenAI span(s) had no gen_ai.usage token counts and were not "
            "counted: check that the instrumentation records usage (for streams too)"
        )
    if messages:
        partial["errorMessage"] = "; ".join(messages)
    return {"partialSuccess": partial}
