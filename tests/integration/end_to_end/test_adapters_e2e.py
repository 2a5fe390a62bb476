"""End to end: a gateway POSTs events and an OTLP trace export to a running
`tokenshare ingest-http`, and exactly those events are in ClickHouse."""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from typing import Any

import orjson

from tests.factories import event
from tests.pipeline import Pipeline
from tests.samples import DATA
from tokenshare.processes import free_ports, spawn, stop, wait_until
from tokenshare.sinks.query import run_query


def request(base: str, path: str, body: bytes | None = None, token: str = "") -> tuple[int, Any]:
    req = urllib.request.Request(
        base + path,
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())
    except OSError:
        return 0, None  # not listening yet


def test_http_and_otlp_events_land_in_clickhouse(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    token = secrets.token_urlsafe(24)
    # The token goes in the environment itself: settings_env() would pass a masked one.
    endpoint = spawn(
        settings,
        ["ingest-http", "--port", str(port)],
        settings.home / "logs" / "ingest-http.log",
        env={"TOKENSHARE_INGEST_TOKEN": token},
    )
    try:
        wait_until(lambda: request(base, "/readyz")[0] == 200, 60, "ingest-http to be ready")
        gateway = json.loads((DATA / "gateway_events.json").read_text())
        assert request(base, "/v1/events", orjson.dumps(gateway), token)[0] == 202
        mixed = [event(1, seed=50), {**event(2, seed=50), "model": "no slash"}]
        status, body = request(base, "/v1/events", orjson.dumps(mixed), token)
        assert status == 207 and [r["index"] for r in body["rejected"]] == [1]
        traces = (DATA / "otlp_genai_traces.json").read_bytes()
        status, body = request(base, "/v1/otlp/v1/traces", traces, token)
        assert status == 200 and body["partialSuccess"]["rejectedSpans"] == "1"
    finally:
        assert stop(endpoint) == 0, pipeline.logs()  # SIGTERM: a clean, flushed exit

    pipeline.wait_drained()
    db = settings.clickhouse_database
    rows = run_query(
        settings,
        f"SELECT event_id, model, provider, prompt_tokens, completion_tokens, cached_tokens, "
        f"app_id FROM {db}.raw_events ORDER BY event_id",
    ).rows
    stored = {r[0]: tuple(r[1:]) for r in rows}
    assert len(rows) == len(stored) == 9, pipeline.logs()
    assert stored == {
        "gw-20260210-000001": ("deepseek/deepseek-v3.2", "DeepSeek", 1800, 640, 512, "app-7"),
        "gw-20260210-000002": (
            "anthropic/claude-4.5-sonnet-20250929", "Anthropic", 5400, 2100, 4096, "app-3",
        ),
        "gw-20260210-000003": ("google/gemini-2.5-flash", "Google AI Studio", 320, 88, 0, None),
        "ev-50-1": (
            str(mixed[0]["model"]), str(mixed[0]["provider"]), mixed[0]["prompt_tokens"],
            mixed[0]["completion_tokens"], mixed[0]["cached_tokens"], mixed[0]["app_id"],
        ),
        "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG": (
            "openai/gpt-4o-2024-08-06", "OpenAI", 1250, 311, 1024, "support-bot",
        ),
        "5b8efff798038103d269b633813fc60c:53995c3f42cd8ad8": (
            "deepseek/deepseek-chat", "DeepSeek", 880, 1536, 0, "support-bot",
        ),
        "msg_01XFDUDYJgAACzvnptvVoYEL": (
            # 4096 cache reads counted apart from the 2048 input tokens: added.
            "anthropic/claude-sonnet-4-5-20250929", "Anthropic", 2048 + 4096, 512, 4096,
            "research-assistant",
        ),
        "0af7651916cd43dd8448eb211c80319c:c8be7c827a314442": (
            "mistralai/mistral-large-latest", "Mistral", 300, 120, 0, "research-assistant",
        ),
        "0af7651916cd43dd8448eb211c80319c:d9cf8d938b425553": (
            "acme_llm/acme-1", "Acme_LLM", 64, 16, 0, "research-assistant",
        ),
    }  # fmt: skip
    # The catalog enriches adapter traffic like any other: DeepSeek is a Chinese lab.
    blocs = run_query(
        settings,
        f"SELECT origin_bloc FROM {db}.raw_events WHERE event_id = 'gw-20260210-000001'",
    ).rows
    assert blocs == [["China"]]
