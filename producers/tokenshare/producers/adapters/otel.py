"""OpenTelemetry GenAI spans -> token events.

Instrumented LLM clients (OpenTelemetry's own instrumentations, OpenLLMetry,
the Vercel AI SDK, ...) already record a span per model call with the GenAI
semantic conventions: model, provider, token usage, finish reasons, times.
This module maps such spans to events from OTLP/HTTP in either encoding,
protobuf (``parse_traces_proto``, the SDKs' and the Collector's default) or JSON
(``parse_export_json``), or from a plain attribute mapping (``span_event``, for
an exporter inside a process). The ``gen_ai.client.token.usage`` histogram of
OTLP metrics is mapped too (``parse_metrics_proto``/``parse_metrics_json``).

Which spans count:

- a span without any ``gen_ai.*`` attribute is not an LLM call: *ignored*;
- a GenAI span without token usage, or an agent/tool span (``invoke_agent``,
  ``create_agent``, ``execute_tool``, whose usage, when present, sums the model
  calls below it and would count them twice), is *skipped*;
- a GenAI span with usage that still cannot be an event (no model, a count out
  of range) is *rejected*, with the reason.

Cache writes: the conventions count ``gen_ai.usage.cache_creation.input_tokens``
(and ``cache_read``) inside ``input_tokens``. An instrumentation that copies
Anthropic's usage object counts them apart instead (its ``input_tokens`` is then
smaller than the cache parts); there the cache parts are added, so that the
tokens written to the cache are kept in ``prompt_tokens`` either way. Both parts
are also kept on their own: ``cached_tokens`` and ``cache_creation_tokens``.

Both older and current attribute names are read (``gen_ai.usage.prompt_tokens``
before ``input_tokens``; ``gen_ai.system`` before ``gen_ai.provider.name``);
see README.md in this folder for the whole table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsPartialSuccess,
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

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
    prompt_and_cache,
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
CACHE_CREATION_TOKENS = (
    "gen_ai.usage.cache_creation.input_tokens",  # semantic conventions (current)
    "gen_ai.usage.cache_creation_input_tokens",  # earlier spelling, OpenLLMetry
    "gen_ai.usage.input_tokens.cache_write",  # Sentry
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
    """The request body is not the OTLP export request it should be."""


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
    return parse_export(_json_object(body))


def _json_object(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OtlpError(f"body is not valid JSON: {exc}") from None


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
                _add_span(
                    batch,
                    attributes(span.get("attributes")),
                    trace_id=str(span.get("traceId") or ""),
                    span_id=str(span.get("spanId") or ""),
                    start=span.get("startTimeUnixNano"),
                    end=span.get("endTimeUnixNano"),
                    resource=resource,
                )
    return batch


# --- OTLP/HTTP protobuf --------------------------------------------------------------


def parse_traces_proto(body: bytes) -> OtlpBatch:
    """Map every span of an ExportTraceServiceRequest (binary protobuf encoding)."""
    request = _decode(ExportTraceServiceRequest, body)
    batch = OtlpBatch()
    for resource_spans in request.resource_spans:
        resource = pb_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                _add_span(
                    batch,
                    pb_attributes(span.attributes),
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    start=span.start_time_unix_nano or None,
                    end=span.end_time_unix_nano or None,
                    resource=resource,
                )
    return batch


M = TypeVar("M", ExportTraceServiceRequest, ExportMetricsServiceRequest)


def _decode(message: type[M], body: bytes) -> M:
    try:
        return message.FromString(body)
    except DecodeError as exc:
        raise OtlpError(f"body is not a protobuf {message.__name__}: {exc}") from None


def pb_attributes(items: Iterable[KeyValue]) -> dict[str, Any]:
    """Protobuf ``KeyValue``s -> ``{key: python value}`` (as ``attributes`` for JSON)."""
    return {item.key: pb_any_value(item.value) for item in items}


def pb_any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [pb_any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return pb_attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


# --- one span of either encoding -------------------------------------------------------


def _add_span(
    batch: OtlpBatch,
    attrs: Mapping[str, Any],
    *,
    trace_id: str,
    span_id: str,
    start: Any,
    end: Any,
    resource: Mapping[str, Any],
) -> None:
    batch.spans += 1
    if attrs.get("gen_ai.operation.name") in AGGREGATE_OPERATIONS:
        batch.aggregates += 1
        return
    try:
        doc = span_event(
            attrs,
            trace_id=trace_id,
            span_id=span_id,
            start=from_unix_nanos(start),
            end=from_unix_nanos(end),
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
    prompt, cached, cache_creation = prompt_and_cache(
        prompt, _tokens(attrs, CACHED_TOKENS), _tokens(attrs, CACHE_CREATION_TOKENS)
    )
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
            "cached_tokens": cached,
            "cache_creation_tokens": cache_creation,
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


# --- gen_ai.client.token.usage (OTLP metrics) -------------------------------------------
#
# The metric is a histogram of tokens per model call, one series per token type
# (``gen_ai.token.type`` ``input`` or ``output``) and attribute set. Each export
# interval's data points of one attribute set (both token types) become one
# event: its tokens are the histograms' sums, its time the end of the interval,
# and its id a hash of the series and interval, so a repeated export is stored
# once. Only delta temporality says what happened in an interval; cumulative
# points (the SDKs' default) are refused with the setting that switches it. An
# event made from metrics stands for every call of its interval, so such events
# count tokens faithfully but requests only by interval.

TOKEN_USAGE_METRIC = "gen_ai.client.token.usage"
#: opentelemetry.proto.metrics.v1.AggregationTemporality
DELTA, CUMULATIVE = 1, 2
_TEMPORALITY_NAMES = {"AGGREGATION_TEMPORALITY_DELTA": DELTA,
                      "AGGREGATION_TEMPORALITY_CUMULATIVE": CUMULATIVE}  # fmt: skip
#: gen_ai.token.type -> the event's side (``prompt``/``completion``: older spellings).
TOKEN_TYPES = {"input": "prompt", "prompt": "prompt",
               "output": "completion", "completion": "completion"}  # fmt: skip
DELTA_HINT = (
    "export with delta temporality (OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta)"
)


@dataclass(frozen=True, slots=True)
class UsagePoint:
    """One data point of the token-usage histogram, from either encoding."""

    attrs: Mapping[str, Any]
    resource: Mapping[str, Any]
    start_ns: Any
    time_ns: Any
    count: int
    tokens: float | None  # the histogram's sum (optional in OTLP)
    temporality: int


@dataclass(slots=True)
class MetricsBatch:
    """What one metrics export request held."""

    events: list[TokenEvent] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # one reason per refused data point
    points: int = 0  # token-usage data points
    ignored: int = 0  # data points of other metrics


def parse_metrics_json(body: bytes) -> MetricsBatch:
    """Map an ExportMetricsServiceRequest in the JSON encoding."""
    doc = _json_object(body)
    if not isinstance(doc, Mapping):
        raise OtlpError("expected a JSON object with resourceMetrics (ExportMetricsServiceRequest)")
    points: list[UsagePoint] = []
    ignored = 0
    for resource_metrics in _list(doc, "resourceMetrics"):
        resource = attributes(_get(resource_metrics, "resource", {}).get("attributes"))
        for scope_metrics in _list(resource_metrics, "scopeMetrics"):
            for metric in _list(scope_metrics, "metrics"):
                data = _get(metric, "histogram", {}) or _get(metric, "exponentialHistogram", {})
                if metric.get("name") != TOKEN_USAGE_METRIC or not data:
                    ignored += sum(
                        len(_list(v, "dataPoints")) for v in metric.values() if isinstance(v, dict)
                    )
                    continue
                temporality = data.get("aggregationTemporality")
                temporality = _TEMPORALITY_NAMES.get(str(temporality), as_int(temporality) or 0)
                points.extend(
                    UsagePoint(
                        attributes(dp.get("attributes")),
                        resource,
                        dp.get("startTimeUnixNano"),
                        dp.get("timeUnixNano"),
                        as_int(dp.get("count")) or 0,
                        as_float(dp.get("sum")),
                        temporality,
                    )
                    for dp in _list(data, "dataPoints")
                )
    batch = usage_events(points)
    batch.ignored = ignored
    return batch


def parse_metrics_proto(body: bytes) -> MetricsBatch:
    """Map an ExportMetricsServiceRequest in the binary protobuf encoding."""
    request = _decode(ExportMetricsServiceRequest, body)
    points: list[UsagePoint] = []
    ignored = 0
    for resource_metrics in request.resource_metrics:
        resource = pb_attributes(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if metric.name != TOKEN_USAGE_METRIC or kind not in (
                    "histogram",
                    "exponential_histogram",
                ):
                    data = getattr(metric, kind) if kind else None
                    ignored += len(data.data_points) if data is not None else 0
                    continue
                hist = metric.histogram if kind == "histogram" else metric.exponential_histogram
                points.extend(
                    UsagePoint(
                        pb_attributes(dp.attributes),
                        resource,
                        dp.start_time_unix_nano or None,
                        dp.time_unix_nano or None,
                        dp.count,
                        dp.sum if dp.HasField("sum") else None,
                        hist.aggregation_temporality,
                    )
                    for dp in hist.data_points
                )
    batch = usage_events(points)
    batch.ignored = ignored
    return batch


def usage_events(points: Iterable[UsagePoint]) -> MetricsBatch:
    """One event per attribute set and interval (see the section comment)."""
    batch = MetricsBatch()
    groups: dict[str, list[UsagePoint]] = {}
    for point in points:
        batch.points += 1
        side = TOKEN_TYPES.get(str(point.attrs.get("gen_ai.token.type")))
        if point.temporality != DELTA:
            batch.rejected.append(f"{TOKEN_USAGE_METRIC} is not delta temporality: {DELTA_HINT}")
        elif side is None:
            batch.rejected.append(
                f"gen_ai.token.type {point.attrs.get('gen_ai.token.type')!r} is not input or output"
            )
        elif point.count and point.tokens is None:
            batch.rejected.append(f"{TOKEN_USAGE_METRIC} data point without a sum")
        elif point.count:  # an interval without calls is no event
            groups.setdefault(_series_key(point), []).append(point)
    for key, group in groups.items():
        try:
            batch.events.append(to_event(_usage_doc(key, group)))
        except MappingError as exc:
            batch.rejected.extend([str(exc)] * len(group))
    return batch


def _series_key(point: UsagePoint) -> str:
    """The attribute set (without the token type) and the collection time: the input
    and output series of one interval share it (their start times may differ, each
    series starting with its first call)."""
    attrs = {k: v for k, v in point.attrs.items() if k != "gen_ai.token.type"}
    return orjson.dumps(
        [sorted(point.resource.items()), sorted(attrs.items()), str(point.time_ns)], default=str
    ).decode()


def _usage_doc(key: str, group: Sequence[UsagePoint]) -> EventDoc:
    sides = {"prompt": 0, "completion": 0}
    for point in group:
        tokens = point.tokens or 0.0
        if tokens < 0 or tokens != int(tokens):
            raise MappingError(f"{TOKEN_USAGE_METRIC} sum is not a token count: {tokens!r}")
        sides[TOKEN_TYPES[str(point.attrs.get("gen_ai.token.type"))]] += int(tokens)
    first_point = group[0]
    attrs = first_point.attrs
    provider = _provider(attrs)
    model = model_slug(_text(attrs, MODEL), provider)
    if model is None:
        raise MappingError(f"{TOKEN_USAGE_METRIC} data point has no gen_ai.request.model")
    end = from_unix_nanos(first_point.time_ns)
    if end is None:
        raise MappingError(f"{TOKEN_USAGE_METRIC} data point has no timeUnixNano")
    digest = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
    return compact(
        {
            "event_id": f"otlp-metric:{digest}",
            "ts": rfc3339(end),
            "model": model,
            "provider": provider_label(provider),
            "prompt_tokens": sides["prompt"],
            "completion_tokens": sides["completion"],
            "app_id": short_text(first_point.resource.get("service.name")),
        }
    )


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
    rejected, message = _traces_partial(batch)
    return {"partialSuccess": _partial_json("rejectedSpans", rejected, message)}


def export_response_proto(batch: OtlpBatch) -> bytes:
    """``export_response`` in the protobuf encoding."""
    rejected, message = _traces_partial(batch)
    return ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=rejected, error_message=message)
    ).SerializeToString()


def metrics_response(batch: MetricsBatch) -> dict[str, Any]:
    """ExportMetricsServiceResponse (JSON): refused token-usage points, with why."""
    rejected, message = _metrics_partial(batch)
    return {"partialSuccess": _partial_json("rejectedDataPoints", rejected, message)}


def metrics_response_proto(batch: MetricsBatch) -> bytes:
    rejected, message = _metrics_partial(batch)
    return ExportMetricsServiceResponse(
        partial_success=ExportMetricsPartialSuccess(
            rejected_data_points=rejected, error_message=message
        )
    ).SerializeToString()


def _traces_partial(batch: OtlpBatch) -> tuple[int, str]:
    messages = [f"span {r.trace_id}:{r.span_id}: {r.reason}" for r in batch.rejected[:5]] + (
        [f"(+{len(batch.rejected) - 5} more)"] if len(batch.rejected) > 5 else []
    )
    if batch.skipped:
        messages.append(
            f"{batch.skipped} GenAI span(s) had no gen_ai.usage token counts and were not "
            "counted: check that the instrumentation records usage (for streams too)"
        )
    return len(batch.rejected), "; ".join(messages)


def _metrics_partial(batch: MetricsBatch) -> tuple[int, str]:
    reasons = list(dict.fromkeys(batch.rejected))  # distinct, in order
    return len(batch.rejected), "; ".join(reasons[:5])


def _partial_json(field_name: str, rejected: int, message: str) -> dict[str, Any]:
    partial: dict[str, Any] = {}
    if rejected:
        partial[field_name] = str(rejected)
    if message:
        partial["errorMessage"] = message
    return partial
