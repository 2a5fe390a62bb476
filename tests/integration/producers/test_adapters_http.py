"""The HTTP ingest endpoint against the real broker: 401/413/415/400/207/202,
the OTLP route (JSON; protobuf from the SDK's exporters: test_otlp_sdk.py),
health and readiness, and what lands on the events topic (without a broker:
tests/unit/producers/test_adapters_http.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import ClientSession
from kafka import KafkaConsumer

from tests.factories import event
from tests.ingest_http import AUTH, TOKEN, post, run
from tests.samples import DATA
from tokenshare import kafka_clients
from tokenshare.schema.event import TokenEvent
from tokenshare.settings import Settings


def topic_messages(settings: Settings) -> list[tuple[bytes, list[dict[str, Any]]]]:
    consumer = KafkaConsumer(
        settings.events_topic,
        bootstrap_servers=settings.kafka_bootstrap,
        **kafka_clients.CONSUMER,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    try:
        return [(m.key, orjson.loads(m.value)) for m in consumer]
    finally:
        consumer.close()


def test_refused_requests_send_nothing(settings: Settings) -> None:
    small = settings.model_copy(update={"ingest_max_body_bytes": 2048})
    valid = [event(i, seed=40) for i in range(3)]

    async def scenario(http: ClientSession) -> None:
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                        {"Authorization": f"Basic {TOKEN}"}):  # fmt: skip
            async with http.post("/v1/events", json=valid, headers=headers) as response:
                assert response.status == 401
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
                body = await response.json()
                assert "bearer token" in body["error"] and body["next"]
        status, body, _ = await post(http, valid, Authorization="Bearer ")
        assert status == 401

        status, body, _ = await post(http, valid, **{"Content-Type": "text/plain"})
        assert status == 415 and "application/json" in body["next"]

        status, body, _ = await post(http, [event(i, seed=41) for i in range(20)])
        assert status == 413 and "2048" in body["error"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
            for _ in range(8):
                yield b" " * 512
            yield b"[]"

        async with http.post(
            "/v1/events", data=chunks(), headers={**AUTH, "Content-Type": "application/json"}
        ) as response:
            assert response.status == 413

        for body_bytes, reason in (
            (b"{not json", "not valid JSON"),
            (b"42", "event object or an array"),
            (b"[]", "empty array"),
        ):
            status, body, _ = await post(http, body_bytes)
            assert status == 400 and reason in body["error"], body

        all_bad = [{**valid[0], "prompt_tokens": "12"}, {"event_id": "x"}]
        status, body, _ = await post(http, all_bad)
        assert status == 400 and body["accepted"] == 0
        assert [r["index"] for r in body["rejected"]] == [0, 1]
        assert "prompt_tokens" in body["rejected"][0]["error"]

        status, body, _ = await post(http, {**valid[0], "ts": "2026-02-01T00:00:00"})
        assert status == 400 and body["rejected"][0]["index"] == 0  # one object: index 0

    run(small, scenario)
    assert topic_messages(settings) == []


def test_accepted_events_are_on_the_topic_after_the_answer(settings: Settings) -> None:
    gateway = json.loads((DATA / "gateway_events.json").read_text())
    mixed = [event(1, seed=42), {**event(2, seed=42), "completion_tokens": -5}, event(3, seed=42)]
    single = event(4, seed=42)

    async def scenario(http: ClientSession) -> None:
        status, body, _ = await post(http, gateway)
        assert (status, body) == (202, {"accepted": 3, "rejected": []})
        status, body, _ = await post(http, mixed)
        assert status == 207 and body["accepted"] == 2
        assert [r["index"] for r in body["rejected"]] == [1]
        assert "completion_tokens" in body["rejected"][0]["error"]
        status, body, _ = await post(http, single)
        assert status == 202 and body["accepted"] == 1
        async with http.get("/stats") as response:
            stats = await response.json()
        assert stats["events_accepted"] == 6 and stats["events_rejected"] == 1
        assert stats["kafka_messages"] == 3

    run(settings, scenario)
    # Acknowledged before the answer: the messages are there, one per request,
    # each a JSON array keyed by its first event id.
    messages = topic_messages(settings)
    assert sorted(key for key, _ in messages) == sorted(
        [b"gw-20260210-000001", b"ev-42-1", b"ev-42-4"]
    )
    by_key = {key: value for key, value in messages}
    assert [e["event_id"] for e in by_key[b"ev-42-1"]] == ["ev-42-1", "ev-42-3"]
    stored = by_key[b"gw-20260210-000001"]
    assert stored[1]["ts"] == "2026-02-10T11:00:01.250000Z"  # normalized to UTC
    assert "gateway_region" not in stored[2]  # unknown keys are not carried on
    as_validated = TokenEvent.model_validate_json(orjson.dumps(single))
    assert by_key[b"ev-42-4"] == [as_validated.model_dump(mode="json", exclude_none=True)]


def test_otlp_traces_route(settings: Settings) -> None:
    traces = (DATA / "otlp_genai_traces.json").read_bytes()

    async def scenario(http: ClientSession) -> None:
        status, body, headers = await post(http, traces, "/v1/otlp/v1/traces")
        assert status == 200 and headers["Content-Type"].startswith("application/json")
        assert body["partialSuccess"]["rejectedSpans"] == "1"
        status, body, _ = await post(http, b"{}", "/v1/otlp/v1/traces")
        assert (status, body) == (200, {"partialSuccess": {}})
        status, body, _ = await post(
            http, b"spans", "/v1/otlp/v1/traces", **{"Content-Type": "text/plain"}
        )
        assert status == 415 and body["code"] == 3 and "x-protobuf" in body["message"]
        status, body, _ = await post(http, b"[1]", "/v1/otlp/v1/traces")
        assert status == 400 and body["code"] == 3
        async with http.post("/v1/otlp/v1/traces", data=traces) as response:
            assert response.status == 401 and (await response.json())["code"] == 16
        async with http.get("/stats") as response:
            stats = await response.json()
        assert (stats["spans"], stats["spans_ignored"], stats["spans_skipped"]) == (9, 1, 1)
        assert (stats["spans_aggregate"], stats["spans_rejected"]) == (1, 1)

    run(settings, scenario)
    ((key, value),) = topic_messages(settings)
    assert key == b"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"
    assert len(value) == 5 and value[0]["model"] == "openai/gpt-4o-2024-08-06"


def test_health_readiness_and_no_auth_mode(settings: Settings) -> None:
    async def scenario(http: ClientSession) -> None:
        async with http.get("/healthz") as response:
            assert response.status == 200
        async with http.get("/readyz") as response:
            assert (response.status, await response.json()) == (200, {"status": "ready"})
        async with http.post("/v1/events", json=event(9, seed=43)) as response:
            assert response.status == 202  # --insecure-no-auth: no header needed

    run(settings, scenario, token=None)
    assert [key for key, _ in topic_messages(settings)] == [b"ev-43-9"]
