"""The HTTP ingest endpoint without a broker: not ready and 503, the command's refusals
to start unsafely, unknown routes (with the broker: tests/integration/producers/)."""

from __future__ import annotations

import pytest
from aiohttp import ClientSession
from click.testing import CliRunner

from tests.factories import event, unique
from tests.ingest_http import post, run
from tokenshare.cli.main import main
from tokenshare.processes import free_ports
from tokenshare.settings import Settings


def test_not_ready_without_kafka_and_503_on_post() -> None:
    (port,) = free_ports(1)  # nothing listens there
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{port}", topic_prefix=unique())

    async def scenario(http: ClientSession) -> None:
        async with http.get("/healthz") as response:
            assert response.status == 200  # alive, though not ready
        async with http.get("/readyz") as response:
            assert response.status == 503
            assert (await response.json())["reason"] == "not connected to Kafka yet"
        status, body, headers = await post(http, event(1, seed=44))
        assert status == 503 and headers["Retry-After"] and "retry" in body["next"]

    run(settings, scenario, ready=False)


def test_command_refuses_to_start_unsafely(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOKENSHARE_INGEST_TOKEN", raising=False)
    runner = CliRunner()
    result = runner.invoke(main, ["ingest-http", "--help"])
    assert result.exit_code == 0 and "/v1/traces" in result.output
    result = runner.invoke(main, ["ingest-http"])
    assert result.exit_code == 1 and "TOKENSHARE_INGEST_TOKEN" in result.output
    result = runner.invoke(main, ["ingest-http", "--insecure-no-auth", "--host", "0.0.0.0"])
    assert result.exit_code == 1 and "127.0.0.1" in result.output
    for masked_or_short in ("**********", "short"):
        result = runner.invoke(
            main, ["ingest-http"], env={"TOKENSHARE_INGEST_TOKEN": masked_or_short}
        )
        assert result.exit_code == 1 and "TOKENSHARE_INGEST_TOKEN" in result.output


def test_unknown_routes_and_methods() -> None:
    async def scenario(http: ClientSession) -> None:
        async with http.get("/v1/events") as response:
            assert response.status == 405
        async with http.post("/v1/other", data=b"{}") as response:
            assert response.status == 404

    (port,) = free_ports(1)
    run(Settings(kafka_bootstrap=f"127.0.0.1:{port}"), scenario, ready=False)
