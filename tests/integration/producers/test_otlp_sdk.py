"""The OpenTelemetry Python SDK's own OTLP/HTTP exporters (protobuf, the default)
against a running ingest endpoint: GenAI spans and the gen_ai.client.token.usage
histogram become events on the events topic; /metrics counts them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from prometheus_client.parser import text_string_to_metric_families

from tests.ingest_http import AUTH, TOKEN
from tests.integration.producers.test_adapters_http import topic_messages
from tokenshare.producers.adapters.http_ingest import create_app
from tokenshare.settings import Settings

RESOURCE = Resource.create({"service.name": "otel-sdk-app"})


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[str, ClientSession]]:
    """The endpoint on a loopback port, once connected to Kafka: its URL and a client."""
    server = TestServer(create_app(settings, token=TOKEN))
    async with server, ClientSession() as http:
        base = str(server.make_url("")).rstrip("/")
        for _ in range(300):
            async with http.get(f"{base}/readyz") as response:
                if response.status == 200:
                    break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the endpoint never connected to Kafka")
        yield base, http


def send_spans(base: str) -> None:
    """Two model calls and an agent span, through the SDK (gzip, protobuf)."""
    exporter = OTLPSpanExporter(
        endpoint=f"{base}/v1/traces", headers=AUTH, compression=Compression.Gzip
    )
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("invoke_agent helper") as agent:
        agent.set_attributes(
            {"gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 9}
        )
        with tracer.start_as_current_span("chat claude") as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "anthropic",
                    "gen_ai.request.model": "claude-sonnet-4-5",
                    "gen_ai.response.id": "msg_otel_sdk_1",
                    # Anthropic's counting: input without the cache reads and writes.
                    "gen_ai.usage.input_tokens": 40,
                    "gen_ai.usage.cache_read.input_tokens": 1000,
                    "gen_ai.usage.cache_creation.input_tokens": 2000,
                    "gen_ai.usage.output_tokens": 300,
                }
            )
        with tracer.start_as_current_span("chat deepseek") as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "deepseek",
                    "gen_ai.response.model": "deepseek-chat",
                    "gen_ai.usage.input_tokens": 500,
                    "gen_ai.usage.output_tokens": 70,
                }
            )
    provider.shutdown()


def send_token_usage(base: str) -> None:
    """gen_ai.client.token.usage as the SDK records it, exported with delta temporality."""
    exporter = OTLPMetricExporter(
        endpoint=f"{base}/v1/metrics",
        headers=AUTH,
        preferred_temporality={Histogram: AggregationTemporality.DELTA},
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    usage = provider.get_meter("test").create_histogram("gen_ai.client.token.usage", unit="{token}")
    common = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
              "gen_ai.request.model": "gpt-4o-mini"}  # fmt: skip
    for prompt, completion in ((100, 10), (250, 30)):
        usage.record(prompt, {**common, "gen_ai.token.type": "input"})
        usage.record(completion, {**common, "gen_ai.token.type": "output"})
    assert provider.force_flush(10_000)
    provider.shutdown()


def test_sdk_exporters_land_events_on_the_topic(settings: Settings) -> None:
    async def scenario() -> dict[str, float]:
        async with running(settings) as (base, http):
            await asyncio.to_thread(send_spans, base)
            await asyncio.to_thread(send_token_usage, base)
            async with http.get(f"{base}/metrics") as response:
                assert response.status == 200
                return scrape(await response.text())

    metrics = asyncio.run(scenario())
    events = {e["event_id"]: e for _, batch in topic_messages(settings) for e in batch}
    claude = events["msg_otel_sdk_1"]
    assert claude["model"] == "anthropic/claude-sonnet-4-5" and claude["app_id"] == "otel-sdk-app"
    assert claude["prompt_tokens"] == 40 + 1000 + 2000  # cache reads and writes kept
    assert (claude["cached_tokens"], claude["completion_tokens"]) == (1000, 300)
    assert claude["cache_creation_tokens"] == 2000  # kept in a column of their own
    [deepseek] = [e for e in events.values() if e["model"] == "deepseek/deepseek-chat"]
    assert (deepseek["prompt_tokens"], deepseek["completion_tokens"]) == (500, 70)
    [usage] = [e for e in events.values() if e["event_id"].startswith("otlp-metric:")]
    assert usage["model"] == "openai/gpt-4o-mini" and usage["provider"] == "OpenAI"
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (350, 40)
    assert len(events) == 3  # the agent span sums its children: not counted again

    assert metrics['tokenshare_http_events_total{outcome="accepted"}'] == 3
    assert metrics['tokenshare_http_spans_not_counted_total{reason="aggregate"}'] == 1
    assert metrics["tokenshare_http_data_points_total"] == 2
    assert metrics['tokenshare_http_otlp_requests_total{signal="metrics"}'] == 1
    assert metrics['tokenshare_http_responses_total{code="200",route="/v1/traces"}'] == 3


def scrape(text: str) -> dict[str, float]:
    """Samples by name and sorted labels, as PromQL prints them."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out
