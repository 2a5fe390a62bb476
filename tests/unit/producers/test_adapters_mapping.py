"""Adapters' mappings on sample payloads in the shape their systems emit
(tests/data/adapters/): every produced event passes the contract, and odd inputs
(missing usage, unknown providers, string integers) are handled."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from tests.samples import DATA
from tokenshare.producers.adapters.common import (
    MappingError,
    as_int,
    event_id,
    model_slug,
    opaque_user,
    provider_label,
    to_event,
)
from tokenshare.producers.adapters.litellm import standard_payload_event
from tokenshare.producers.adapters.openrouter import (
    chat_completion_event,
    chat_completion_token_event,
    generation_event,
    generation_token_event,
)
from tokenshare.producers.adapters.otel import (
    OtlpError,
    any_value,
    export_response,
    parse_export,
    parse_export_json,
    span_event,
)
from tokenshare.schema.event import TokenEvent


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


# --- common ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "provider", "slug"),
    [
        ("gpt-4o", "openai", "openai/gpt-4o"),
        ("claude-sonnet-4-5", "anthropic", "anthropic/claude-sonnet-4-5"),
        ("gemini-2.5-flash", "gcp.gemini", "google/gemini-2.5-flash"),
        ("my-tuned-model", "google", "google/my-tuned-model"),
        ("deepseek-reasoner", "deepseek", "deepseek/deepseek-reasoner"),
        ("open-mixtral-8x22b", "mistral_ai", "mistralai/open-mixtral-8x22b"),
        ("acme-1", "Acme_LLM", "acme_llm/acme-1"),  # unknown: the system, lowercased
        ("acme-1", None, "unknown/acme-1"),
        # The model family wins over the API it was called through.
        ("deepseek-chat", "openai", "deepseek/deepseek-chat"),
        ("llama-3.3-70b-versatile", "groq", "meta-llama/llama-3.3-70b-versatile"),
        ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", "aws.bedrock",
         "anthropic/claude-3-7-sonnet-20250219-v1:0"),
        # Slugs stay; routed names lose the route.
        ("meta-llama/Llama-3.3-70B-Instruct", "together_ai", "meta-llama/Llama-3.3-70B-Instruct"),
        ("openrouter/deepseek/deepseek-chat", "openrouter", "deepseek/deepseek-chat"),
        ("openrouter/auto", None, "openrouter/auto"),
        ("accounts/fireworks/models/qwen3-235b-a22b", "fireworks_ai", "qwen/qwen3-235b-a22b"),
        ("gpt 4o (prod)", "azure.ai.openai", "openai/gpt-4o-prod"),
    ],
)  # fmt: skip
def test_model_slugs(model: str, provider: str | None, slug: str) -> None:
    assert model_slug(model, provider) == slug


def test_ids_labels_numbers_and_users() -> None:
    assert event_id(None, "", "msg_01XFDUDYJgAACzvnptvVoYEL") == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert event_id("gen id/7") == "gen-id-7"
    long_id = event_id("x" * 300)
    assert long_id is not None and long_id.startswith("sha256:") and len(long_id) <= 128
    assert event_id(None) is None
    assert provider_label("mistral_ai") == "Mistral"
    assert provider_label("Some Host!") == "Some Host-"
    assert provider_label(None) == "unknown"
    assert [as_int(v) for v in ("42", " 7 ", 3.0, 3.5, True, "1e3", None)] == [
        42, 7, 3, None, None, None, None,
    ]  # fmt: skip
    hashed = opaque_user("Alice@Example.com")
    assert hashed == opaque_user("alice@example.com") and hashed and "@" not in hashed
    assert opaque_user("user-8f3a") == "user-8f3a"


# --- OpenTelemetry -------------------------------------------------------------------------


def test_otlp_genai_spans_become_events() -> None:
    batch = parse_export(load("otlp_genai_traces.json"))
    assert batch.spans == 9
    assert (batch.ignored, batch.skipped, batch.aggregates) == (1, 1, 1)
    assert [r.span_id for r in batch.rejected] == ["1234567890abcdef"]
    assert "model" in batch.rejected[0].reason
    by_id = {e.event_id: e for e in batch.events}
    assert len(by_id) == 5 and all(isinstance(e, TokenEvent) for e in batch.events)

    openai = by_id["chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"]  # gen_ai.response.id
    assert openai.model == "openai/gpt-4o-2024-08-06"  # the response model, not the request's
    assert openai.provider == "OpenAI"
    assert (openai.prompt_tokens, openai.completion_tokens, openai.cached_tokens) == (
        1250,
        311,
        1024,
    )
    assert openai.ts == datetime(2026, 2, 10, 12, 0, tzinfo=UTC)
    assert openai.latency_ms == 1840 and openai.finish_reason == "stop"
    assert openai.app_id == "support-bot"  # resource service.name
    assert openai.user_id and "@" not in openai.user_id

    # No response id: trace id and span id; OpenAI's SDK against DeepSeek's host.
    deepseek = by_id["5b8efff798038103d269b633813fc60c:53995c3f42cd8ad8"]
    assert (deepseek.model, deepseek.provider) == ("deepseek/deepseek-chat", "DeepSeek")
    assert (deepseek.prompt_tokens, deepseek.completion_tokens) == (880, 1536)  # "1536" string
    assert deepseek.reasoning_tokens == 1200 and deepseek.finish_reason == "length"

    # Older attribute names (gen_ai.system, usage.prompt_tokens/completion_tokens).
    claude = by_id["msg_01XFDUDYJgAACzvnptvVoYEL"]
    assert (claude.model, claude.provider) == ("anthropic/claude-sonnet-4-5-20250929", "Anthropic")
    # 4096 cache reads beside 2048 input tokens: counted apart (Anthropic's usage), so added.
    assert (claude.prompt_tokens, claude.completion_tokens) == (2048 + 4096, 512)
    assert claude.cached_tokens == 4096
    assert claude.streamed and claude.app_id == "research-assistant"

    mistral = by_id["0af7651916cd43dd8448eb211c80319c:c8be7c827a314442"]
    assert (mistral.model, mistral.provider) == ("mistralai/mistral-large-latest", "Mistral")
    assert (mistral.prompt_tokens, mistral.completion_tokens) == (300, 120)  # doubleValue
    assert mistral.finish_reason == "tool_calls"

    acme = by_id["0af7651916cd43dd8448eb211c80319c:d9cf8d938b425553"]
    assert (acme.model, acme.provider) == ("acme_llm/acme-1", "Acme_LLM")


def test_otlp_response_follows_the_spec() -> None:
    batch = parse_export(load("otlp_genai_traces.json"))
    partial = export_response(batch)["partialSuccess"]
    assert partial["rejectedSpans"] == "1"  # int64: a decimal string in proto3 JSON
    assert "1234567890abcdef" in partial["errorMessage"]
    assert "no gen_ai.usage" in partial["errorMessage"]  # the warning for the span without usage
    assert export_response(parse_export({})) == {"partialSuccess": {}}
    assert export_response(parse_export({"resourceSpans": []})) == {"partialSuccess": {}}


def test_otlp_any_values() -> None:
    assert any_value({"intValue": "9007199254740993"}) == 9007199254740993
    assert any_value({"intValue": 12}) == 12
    assert any_value({"doubleValue": "NaN"}) is None
    assert any_value({"doubleValue": 2.0}) == 2.0
    assert any_value({"boolValue": True}) is True
    assert any_value({"arrayValue": {"values": [{"stringValue": "stop"}, {"intValue": "1"}]}}) == [
        "stop",
        1,
    ]
    assert any_value(
        {"kvlistValue": {"values": [{"key": "a", "value": {"stringValue": "b"}}]}}
    ) == {"a": "b"}
    assert any_value({"arrayValue": {}}) == []
    assert any_value("not an AnyValue") is None


def test_otlp_odd_spans() -> None:
    start = datetime(2026, 2, 10, 12, tzinfo=UTC)
    base = {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini"}
    span: dict[str, Any] = {
        "trace_id": "ab" * 16,
        "span_id": "cd" * 8,
        "start": start,
        "end": start,
    }
    assert span_event(base, **span) is None  # no usage: skipped, not an error
    doc = span_event({**base, "gen_ai.usage.output_tokens": "7"}, **span)
    assert doc is not None and to_event(doc).prompt_tokens == 0  # one side missing: 0
    with pytest.raises(MappingError, match="whole number"):
        span_event({**base, "gen_ai.usage.input_tokens": "lots"}, **span)
    with pytest.raises(MappingError, match="startTimeUnixNano"):
        span_event({**base, "gen_ai.usage.input_tokens": 5}, **{**span, "start": None})
    with pytest.raises(MappingError, match="traceId"):
        span_event({**base, "gen_ai.usage.input_tokens": 5}, **{**span, "trace_id": ""})
    late = span_event(
        {**base, "gen_ai.usage.input_tokens": 5},
        **{**span, "end": datetime(2026, 2, 10, 14, tzinfo=UTC)},
    )
    assert late is not None and "latency_ms" not in late  # a 2 h span is not a latency
    unknown = span_event({"gen_ai.usage.input_tokens": 5, "gen_ai.request.model": "m"}, **span)
    assert unknown is not None and to_event(unknown).provider == "unknown"
    # Counts out of the contract's range are rejected with the contract's reason.
    huge = span_event({**base, "gen_ai.usage.input_tokens": 10**9}, **span)
    assert huge is not None
    with pytest.raises(MappingError, match="prompt_tokens"):
        to_event(huge)


def test_otlp_bodies_that_are_not_requests() -> None:
    with pytest.raises(OtlpError, match="JSON"):
        parse_export_json(b"\x0a\x12protobuf")
    with pytest.raises(OtlpError, match="resourceSpans"):
        parse_export_json(b"[]")
    # Malformed parts are skipped, not fatal.
    batch = parse_export({"resourceSpans": [{"scopeSpans": "nope"}, 5, {"scopeSpans": [{}]}]})
    assert batch.spans == 0 and not batch.events


# --- LiteLLM --------------------------------------------------------------------------------


def litellm_events() -> dict[str, TokenEvent | None]:
    result: dict[str, TokenEvent | None] = {}
    for call in load("litellm_calls.json"):
        kwargs = call["kwargs"]
        doc = standard_payload_event(
            kwargs["standard_logging_object"], call_id=kwargs["litellm_call_id"]
        )
        result[call["what"]] = None if doc is None else to_event(doc)
    return result


def test_litellm_standard_payloads() -> None:
    events = litellm_events()
    openai = events["openai via the proxy, cached prompt"]
    assert openai is not None
    assert openai.event_id == "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"
    assert (openai.model, openai.provider) == ("openai/gpt-4o-mini-2024-07-18", "OpenAI")
    assert (openai.prompt_tokens, openai.completion_tokens, openai.cached_tokens) == (
        1200,
        350,
        1024,
    )
    assert openai.cost_usd == pytest.approx(0.00039)
    assert (openai.app_id, openai.user_id) == ("team-growth", "user-8f3a")
    assert openai.latency_ms == 2200 and openai.finish_reason == "stop"
    assert openai.ts == datetime(2026, 2, 10, 12, 0, 0, 123000, tzinfo=UTC)

    claude = events["anthropic, streamed, reasoning and tool calls"]
    assert claude is not None and claude.streamed
    assert (claude.reasoning_tokens, claude.cached_tokens, claude.tool_calls) == (1500, 4096, 2)
    assert claude.finish_reason == "tool_calls" and claude.latency_ms == 41_500

    bedrock = events["bedrock inference profile, usage only on the hidden params"]
    assert bedrock is not None
    assert bedrock.model == "anthropic/claude-3-7-sonnet-20250219-v1:0"
    assert (bedrock.provider, bedrock.cached_tokens) == ("Amazon Bedrock", 128)
    assert bedrock.user_id == "customer-4411" and bedrock.app_id is None  # end_user fallback

    vllm = events["self-hosted vLLM, unknown lab, no usage object"]
    assert vllm is not None
    assert (vllm.model, vllm.provider) == ("hosted_vllm/my-finetune-7b", "vLLM")
    assert (vllm.reasoning_tokens, vllm.cached_tokens) == (0, 0)

    assert events["cache hit: answered by LiteLLM's cache, not counted"] is None
    assert events["failed call: not counted"] is None


def test_litellm_odd_payloads() -> None:
    (call, *_) = load("litellm_calls.json")
    payload = call["kwargs"]["standard_logging_object"]
    no_tokens = {**payload, "prompt_tokens": 0, "completion_tokens": 0, "metadata": {}}
    assert standard_payload_event(no_tokens) is None  # e.g. image generation
    with pytest.raises(MappingError, match="model"):
        standard_payload_event({**payload, "model": None, "hidden_params": {}})
    with pytest.raises(MappingError, match="id"):
        standard_payload_event({**payload, "id": None})
    # No startTime in the payload: the callback's start_time (naive = local time).
    local = datetime(2026, 2, 10, 13, 0)
    doc = standard_payload_event({**payload, "startTime": None}, start_time=local)
    assert doc is not None and to_event(doc).ts == local.astimezone(UTC)
    # An older LiteLLM: counts only on the response object (attribute access).
    response = SimpleNamespace(
        usage=SimpleNamespace(
            prompt_tokens=40,
            completion_tokens=9,
            prompt_tokens_details=SimpleNamespace(cached_tokens=32),
            completion_tokens_details=None,
        ),
        choices=[SimpleNamespace(finish_reason="length", message=SimpleNamespace(tool_calls=[]))],
    )
    bare = {"id": "x-1", "model": "gpt-4.1", "startTime": payload["startTime"]}
    event = to_event(standard_payload_event(bare, response_obj=response) or {})
    assert (event.prompt_tokens, event.completion_tokens, event.cached_tokens) == (40, 9, 32)
    assert (event.model, event.provider, event.finish_reason) == (
        "openai/gpt-4.1",
        "unknown",
        "length",
    )
    with pytest.raises(MappingError, match="completion_tokens"):
        to_event(standard_payload_event({**payload, "completion_tokens": -3}) or {})


# --- OpenRouter -----------------------------------------------------------------------------


def test_openrouter_generation_records() -> None:
    docs = load("openrouter_generations.json")
    documented, thinking, fallback = (generation_token_event(d["response"]) for d in docs)

    assert documented.event_id == "gen-3bhGkxlo4XFrqiabUM7NDtwDzWwG"
    assert (documented.model, documented.provider) == ("sao10k/l3-stheno-8b", "Infermatic")
    assert (documented.reasoning_tokens, documented.cached_tokens) == (5, 3)
    assert documented.app_id == "12345" and documented.user_id == "user-123"
    assert documented.cost_usd == pytest.approx(0.0015) and documented.latency_ms == 1250

    # Native counts preferred: 521 native completion tokens, not the normalized 30.
    assert (thinking.prompt_tokens, thinking.completion_tokens) == (4, 521)
    assert thinking.model == "google/gemini-2.0-flash-thinking-exp-01-21:free"
    assert thinking.reasoning_tokens == 0 and thinking.streamed

    # Native counts missing: the normalized ones; no app id: the origin's host.
    assert (fallback.prompt_tokens, fallback.completion_tokens) == (1800, 640)
    assert fallback.app_id == "chat.example.org"
    assert fallback.user_id and "@" not in fallback.user_id
    assert fallback.ts == datetime(2026, 2, 12, 6, 15, 0, 500000, tzinfo=UTC)


def test_openrouter_inline_usage() -> None:
    docs = load("openrouter_chat_usage.json")
    accounting, result, byok = (chat_completion_token_event(d["response"]) for d in docs)

    # Cache writes are part of prompt_tokens (194 >= 100): kept, not added twice.
    assert (accounting.prompt_tokens, accounting.completion_tokens) == (194, 2)
    assert accounting.cached_tokens == 0 and accounting.streamed  # a stream's last chunk
    assert accounting.cost_usd == pytest.approx(0.95)  # not BYOK: `cost` is the whole bill
    assert accounting.event_id == "gen-1770766399-usageAccounting"
    assert accounting.ts == datetime(2026, 2, 10, 23, 33, 19, tzinfo=UTC)

    assert (result.model, result.provider) == ("openai/gpt-4", "unknown")
    assert (result.prompt_tokens, result.cached_tokens, result.reasoning_tokens) == (10, 2, 5)
    assert result.cost_usd == pytest.approx(0.0012) and not result.streamed
    assert result.finish_reason == "stop"

    # BYOK: OpenRouter's fee plus the provider's bill to the caller's key.
    assert byok.cost_usd == pytest.approx(0.00031 + 0.0062)
    assert (byok.provider, byok.finish_reason) == ("DeepSeek", "length")
    assert (byok.cached_tokens, byok.reasoning_tokens) == (4096, 1700)

    called = chat_completion_token_event(docs[0]["response"], user="a@b.org", app_id="chat-ui")
    assert called.app_id == "chat-ui" and called.user_id and "@" not in called.user_id
    # Anthropic-style counting (the cache parts beside the input): added to the prompt.
    usage = {**docs[0]["response"]["usage"], "prompt_tokens": 40}
    apart = chat_completion_token_event({**docs[0]["response"], "usage": usage})
    assert apart.prompt_tokens == 140
    # cache_write_tokens: the cache-creation part of the prompt, kept apart.
    written = chat_completion_token_event(docs[0]["response"])
    assert (written.cached_tokens, written.cache_creation_tokens) == (0, 100)
    assert apart.cache_creation_tokens == 100 and byok.cache_creation_tokens == 0


def test_openrouter_inline_usage_errors() -> None:
    response = load("openrouter_chat_usage.json")[1]["response"]
    with pytest.raises(MappingError, match="usage"):
        chat_completion_event({**response, "usage": None})
    with pytest.raises(MappingError, match="prompt_tokens"):
        chat_completion_event({**response, "usage": {"completion_tokens": 1}})
    with pytest.raises(MappingError, match="created"):
        chat_completion_event({**response, "created": "soon"})
    with pytest.raises(MappingError, match="model"):
        chat_completion_event({**response, "model": None})


def test_openrouter_odd_records() -> None:
    record = load("openrouter_generations.json")[0]["response"]["data"]
    with pytest.raises(MappingError, match="tokens_prompt"):
        generation_event({**record, "native_tokens_prompt": None, "tokens_prompt": None})
    strings = generation_token_event({**record, "native_tokens_prompt": "10"})
    assert strings.prompt_tokens == 10
    naive = generation_token_event({**record, "created_at": "2026-02-10T23:33:19"})
    assert naive.ts == datetime(2026, 2, 10, 23, 33, 19, tzinfo=UTC)
    clamped = generation_token_event({**record, "native_tokens_reasoning": 999})
    assert clamped.reasoning_tokens == clamped.completion_tokens == 25
    unknown = generation_token_event({**record, "provider_name": None, "app_id": None})
    assert unknown.provider == "unknown" and unknown.app_id == "openrouter.ai"
    with pytest.raises(MappingError, match="created_at"):
        generation_event({**record, "created_at": "yesterday"})
    with pytest.raises(MappingError, match="ts"):
        generation_token_event({**record, "created_at": "2019-01-01T00:00:00Z"})


def test_litellm_keeps_anthropic_cache_writes_apart() -> None:
    (call, *_) = load("litellm_calls.json")
    start = call["kwargs"]["standard_logging_object"]["startTime"]
    # Anthropic's usage as LiteLLM passes it on: input without the cache reads and writes.
    response = SimpleNamespace(
        usage=SimpleNamespace(
            prompt_tokens=40,
            completion_tokens=300,
            cache_read_input_tokens=1000,
            cache_creation_input_tokens=2000,
        ),
        choices=[],
    )
    bare = {"id": "msg-cache-1", "model": "anthropic/claude-sonnet-4-5", "startTime": start}
    event = to_event(standard_payload_event(bare, response_obj=response) or {})
    assert event.prompt_tokens == 40 + 1000 + 2000
    assert (event.cached_tokens, event.cache_creation_tokens) == (1000, 2000)
    # The worker's contract holds both parts within prompt_tokens.
    assert event.cached_tokens + event.cache_creation_tokens <= event.prompt_tokens
