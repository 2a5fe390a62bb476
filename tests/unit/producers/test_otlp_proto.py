"""OTLP protobuf decoding and the gen_ai.client.token.usage mapping, without a broker
(the SDK's own exporters against a running endpoint:
tests/integration/producers/test_otlp_sdk.py)."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from aiohttp import ClientSession
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    HistogramDataPoint,
    Metric,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import Histogram as HistogramData
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from tests.factories import unique
from tests.ingest_http import AUTH, run
from tokenshare.processes import free_ports
from tokenshare.producers.adapters.otel import (
    OtlpError,
    export_response_proto,
    metrics_response,
    parse_export,
    parse_metrics_json,
    parse_metrics_proto,
    parse_traces_proto,
)
from tokenshare.settings import Settings

NOW_NS = time.time_ns()


def kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        any_value = AnyValue(bool_value=value)
    elif isinstance(value, int):
        any_value = AnyValue(int_value=value)
    elif isinstance(value, float):
        any_value = AnyValue(double_value=value)
    elif isinstance(value, list):
        any_value = AnyValue(
            array_value=ArrayValue(values=[AnyValue(string_value=v) for v in value])
        )
    else:
        any_value = AnyValue(string_value=value)
    return KeyValue(key=key, value=any_value)


SPAN_ATTRS: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "server.address": "api.deepseek.com",
    "gen_ai.request.model": "deepseek-chat",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 300,
    "gen_ai.usage.cache_read.input_tokens": 200,
    "gen_ai.usage.cache_creation.input_tokens": 1000,
    "gen_ai.usage.reasoning.output_tokens": 120,
    "gen_ai.response.finish_reasons": ["stop"],
    "gen_ai.request.stream": True,
    "user.id": "u-17",
}


def traces_proto() -> ExportTraceServiceRequest:
    span = Span(
        trace_id=bytes.fromhex("5b8efff798038103d269b633813fc60c"),
        span_id=bytes.fromhex("53995c3f42cd8ad8"),
        name="chat deepseek-chat",
        start_time_unix_nano=NOW_NS - 2_000_000_000,
        end_time_unix_nano=NOW_NS,
        attributes=[kv(k, v) for k, v in SPAN_ATTRS.items()],
    )
    plain = Span(
        trace_id=b"\x01" * 16,
        span_id=b"\x02" * 8,
        name="GET /",
        attributes=[kv("http.method", "GET")],
    )
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[kv("service.name", "support-bot")]),
                scope_spans=[ScopeSpans(spans=[span, plain])],
            )
        ]
    )


def json_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, list):
        return {"arrayValue": {"values": [{"stringValue": v} for v in value]}}
    return {"stringValue": value}


def test_protobuf_spans_map_as_their_json_encoding() -> None:
    proto = parse_traces_proto(traces_proto().SerializeToString())
    doc = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "support-bot"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "53995c3f42cd8ad8",
                                "startTimeUnixNano": str(NOW_NS - 2_000_000_000),
                                "endTimeUnixNano": str(NOW_NS),
                                "attributes": [
                                    {"key": k, "value": json_value(v)}
                                    for k, v in SPAN_ATTRS.items()
                                ],
                            },
                            {"traceId": "01" * 16, "spanId": "02" * 8, "attributes": []},
                        ]
                    }
                ],
            }
        ]
    }
    assert proto.events == parse_export(doc).events
    assert (proto.spans, proto.ignored, proto.rejected) == (2, 1, [])
    [e] = proto.events
    assert e.event_id == "5b8efff798038103d269b633813fc60c:53995c3f42cd8ad8"
    assert (e.model, e.provider, e.app_id) == ("deepseek/deepseek-chat", "DeepSeek", "support-bot")
    # 1200 input tokens hold the 200 cache reads and 1000 cache writes (the conventions).
    assert (e.prompt_tokens, e.cached_tokens, e.completion_tokens) == (1200, 200, 300)
    assert (e.reasoning_tokens, e.finish_reason, e.streamed, e.latency_ms) == (
        120,
        "stop",
        True,
        2000,
    )
    answer = ExportTraceServiceResponse.FromString(export_response_proto(proto))
    assert answer.partial_success.rejected_spans == 0


def test_a_body_that_is_not_the_message_is_refused() -> None:
    with pytest.raises(OtlpError, match="ExportTraceServiceRequest"):
        parse_traces_proto(b"\xff\xff\xff")
    with pytest.raises(OtlpError, match="ExportMetricsServiceRequest"):
        parse_metrics_proto(b"\x0a\x05\x0a\x03\xff")


def usage_metric(
    temporality: int, points: list[tuple[str, float, int]], name: str = "gen_ai.client.token.usage"
) -> Metric:
    common = [kv("gen_ai.operation.name", "chat"), kv("gen_ai.provider.name", "anthropic"),
              kv("gen_ai.request.model", "claude-haiku-4-5")]  # fmt: skip
    return Metric(
        name=name,
        unit="{token}",
        histogram=HistogramData(
            aggregation_temporality=temporality,
            data_points=[
                HistogramDataPoint(
                    attributes=[*common, kv("gen_ai.token.type", kind)],
                    start_time_unix_nano=NOW_NS - 60_000_000_000 + i,  # series start apart
                    time_unix_nano=NOW_NS,
                    count=count,
                    sum=total,
                )
                for i, (kind, total, count) in enumerate(points)
            ],
        ),
    )


def metrics_request(*metrics: Metric) -> bytes:
    return ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=Resource(attributes=[kv("service.name", "batch-jobs")]),
                scope_metrics=[ScopeMetrics(metrics=list(metrics))],
            )
        ]
    ).SerializeToString()


DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE


def test_token_usage_histogram_becomes_one_event_per_interval() -> None:
    body = metrics_request(
        usage_metric(DELTA, [("input", 9000.0, 12), ("output", 1500.0, 12)]),
        usage_metric(DELTA, [("input", 1.0, 1)], name="gen_ai.client.operation.duration"),
    )
    batch = parse_metrics_proto(body)
    [e] = batch.events
    assert (batch.points, batch.ignored, batch.rejected) == (2, 1, [])
    assert (e.model, e.provider, e.app_id) == (
        "anthropic/claude-haiku-4-5",
        "Anthropic",
        "batch-jobs",
    )
    assert (e.prompt_tokens, e.completion_tokens) == (9000, 1500)
    assert e.event_id.startswith("otlp-metric:")
    # The same export again: the same id, so the store keeps it once.
    assert parse_metrics_proto(body).events[0].event_id == e.event_id


def test_cumulative_points_are_refused_with_the_setting_to_change() -> None:
    batch = parse_metrics_proto(metrics_request(usage_metric(CUMULATIVE, [("input", 10.0, 1)])))
    assert batch.events == [] and len(batch.rejected) == 1
    answer = metrics_response(batch)["partialSuccess"]
    assert answer["rejectedDataPoints"] == "1"
    assert "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta" in answer["errorMessage"]


def test_token_usage_in_json() -> None:
    doc = {
        "resourceMetrics": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "web"}}]
                },
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "gen_ai.client.token.usage",
                                "histogram": {
                                    "aggregationTemporality": "AGGREGATION_TEMPORALITY_DELTA",
                                    "dataPoints": [
                                        {
                                            "attributes": [
                                                {
                                                    "key": "gen_ai.request.model",
                                                    "value": {"stringValue": "gpt-4o"},
                                                },
                                                {
                                                    "key": "gen_ai.provider.name",
                                                    "value": {"stringValue": "openai"},
                                                },
                                                {
                                                    "key": "gen_ai.token.type",
                                                    "value": {"stringValue": kind},
                                                },
                                            ],
                                            "timeUnixNano": str(NOW_NS),
                                            "count": "3",
                                            "sum": total,
                                        }
                                        for kind, total in (
                                            ("input", 600),
                                            ("output", 90),
                                            ("audio", 5),
                                        )
                                    ],
                                },
                            }
                        ]
                    }
                ],
            }
        ]
    }
    batch = parse_metrics_json(orjson.dumps(doc))
    [e] = batch.events
    assert (e.model, e.prompt_tokens, e.completion_tokens) == ("openai/gpt-4o", 600, 90)
    assert len(batch.rejected) == 1 and "audio" in batch.rejected[0]


def test_protobuf_errors_are_google_rpc_status() -> None:
    """No broker (a closed port): a malformed body is refused before anything is sent."""
    [port] = free_ports(1)
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{port}", topic_prefix=unique())

    async def scenario(http: ClientSession) -> None:
        headers = {**AUTH, "Content-Type": "application/x-protobuf"}
        async with http.post("/v1/traces", data=b"\xff\xff", headers=headers) as response:
            assert response.status == 400 and response.content_type == "application/x-protobuf"
            status = Status.FromString(await response.read())
        assert status.code == 3 and "ExportTraceServiceRequest" in status.message
        async with http.post(
            "/v1/metrics", data=b"\xff", headers={"Content-Type": "application/x-protobuf"}
        ) as response:
            assert response.status == 401
            assert Status.FromString(await response.read()).code == 16

    run(settings, scenario, ready=False)
