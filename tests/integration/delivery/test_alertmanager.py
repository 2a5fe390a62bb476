"""Alerts reach a real Alertmanager through tokenshare's delivery, and Alertmanager
routes, groups and silences them as the shipped config says.

Alertmanager v0.35.0 is built from the Go module proxy once (tokenshare.localstack.gotools)
and started by each test on a free loopback port with the shipped
deploy/prometheus/alertmanager.yml, its Slack URL pointed at a receiver in the test.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.factories import crossover_alert
from tests.paths import ROOT
from tests.promstack import alertmanager, get_json, post_json
from tokenshare.processes import free_ports, wait_until
from tokenshare.schema.outputs import AlertMessage
from tokenshare.settings import Settings
from tokenshare.streams.shares.delivery import Delivery

SHIPPED = ROOT / "deploy" / "prometheus" / "alertmanager.yml"


@dataclass
class SlackReceiver:
    """An HTTP endpoint standing in for Slack: keeps every JSON body posted to it."""

    url: str = ""
    posts: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    receiver = SlackReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.posts.append(json.loads(body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/x"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()


def shipped_config(slack_url: str) -> dict[str, Any]:
    """deploy/prometheus/alertmanager.yml, with Slack at ``slack_url`` and the group
    timers shortened so a test need not wait the production 30 s."""
    config: dict[str, Any] = yaml.safe_load(SHIPPED.read_text())
    for receiver in config["receivers"]:
        for slack_config in receiver["slack_configs"]:
            del slack_config["api_url_file"]
            slack_config["api_url"] = slack_url
    config["route"].update(group_wait="1s", group_interval="1s")
    return config


def message(**override: Any) -> AlertMessage:
    return AlertMessage.model_validate({**crossover_alert(), **override})


async def deliver(delivery: Delivery, alerts: list[AlertMessage], timeout: float = 60) -> None:
    for alert in alerts:
        delivery.submit(alert)
    async with asyncio.timeout(timeout):
        while delivery.stats.delivered + delivery.stats.failed < len(alerts):
            await asyncio.sleep(0.05)
    assert delivery.stats.failed == 0, delivery.by_destination()


def delivery_to(url: str, **options: Any) -> Delivery:
    return Delivery.from_settings(Settings(alertmanager_url=url), **options)


def active(url: str, **filters: str) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    alerts: list[dict[str, Any]] = get_json(f"{url}/api/v2/alerts?{query}")
    return alerts


def test_alerts_posted_read_back_grouped_and_sent_to_slack(
    tmp_path: Path, slack: SlackReceiver
) -> None:
    crossover = message()
    threshold = message(
        alert_id="threshold-test-1",
        rule="threshold",
        dimension="weights",
        subject="open above 30%",
        text="Open-weight models passed 30% of tokens",
        severity="critical",
        details={"value": "open", "share": 0.31, "level": 0.3},
    )
    with alertmanager(tmp_path / "am", shipped_config(slack.url)) as url:

        async def scenario() -> None:
            delivery = delivery_to(url)
            await delivery.start()
            try:
                await deliver(delivery, [crossover, threshold])
            finally:
                await delivery.stop()

        asyncio.run(scenario())

        stored = {a["labels"]["alertname"]: a for a in active(url)}
        assert set(stored) == {"TokenshareCrossover", "TokenshareThreshold"}
        got = stored["TokenshareCrossover"]
        assert got["labels"] == {
            "alertname": "TokenshareCrossover",
            "service": "tokenshare",
            "rule": "crossover",
            "kind": "change",
            "severity": "warning",
            "dimension": "origin_bloc",
            "measure": "tokens",
            "subject": "China over US",
            "window": "2026-W07",
            "window_kind": "iso_week",
        }
        assert got["annotations"]["summary"] == "China overtook US"
        assert got["annotations"]["alert_id"] == "crossover-test-1"
        assert json.loads(got["annotations"]["details"])["leader"] == "China"
        assert got["status"]["state"] == "active" and got["receivers"][0]["name"] == "market"
        assert got["generatorURL"].endswith("/alerts")
        ends = datetime.fromisoformat(got["endsAt"]) - datetime.fromisoformat(got["startsAt"])
        assert ends == timedelta(days=1)
        assert stored["TokenshareThreshold"]["labels"]["severity"] == "critical"

        # Grouped by alertname, dimension and window: one Slack message per group.
        wait_until(lambda: len(slack.posts) >= 2, 60, "Alertmanager to notify Slack")
        texts = {p["attachments"][0]["title"]: p["attachments"][0]["text"] for p in slack.posts}
        assert texts["TokenshareCrossover · origin_bloc · 2026-W07"] == "China overtook US\n"
        assert texts["TokenshareThreshold · weights · 2026-W07"].startswith("Open-weight")


def test_a_silence_suppresses_matching_alerts(tmp_path: Path, slack: SlackReceiver) -> None:
    now = datetime.now(UTC)
    with alertmanager(tmp_path / "am", shipped_config(slack.url)) as url:
        post_json(
            f"{url}/api/v2/silences",
            {
                "matchers": [{"name": "rule", "value": "threshold", "isRegex": False}],
                "startsAt": now.isoformat(),
                "endsAt": (now + timedelta(hours=1)).isoformat(),
                "createdBy": "tests",
                "comment": "tuning the threshold rules",
            },
        )

        async def scenario() -> None:
            delivery = delivery_to(url)
            await delivery.start()
            try:
                await deliver(
                    delivery,
                    [message(), message(alert_id="t2", rule="threshold", subject="China>40%")],
                )
            finally:
                await delivery.stop()

        asyncio.run(scenario())
        states = {a["labels"]["rule"]: a["status"] for a in active(url)}
        assert states["crossover"]["state"] == "active"
        assert states["threshold"]["state"] == "suppressed"
        assert states["threshold"]["silencedBy"]


def test_delivery_retries_until_alertmanager_comes_up(tmp_path: Path) -> None:
    """Alerts submitted while Alertmanager is down are posted once it answers."""
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    config = {"route": {"receiver": "none"}, "receivers": [{"name": "none"}]}

    async def scenario() -> Delivery:
        delivery = delivery_to(url, attempts=200, first_delay=0.2, max_delay=1.0)
        await delivery.start()
        with ExitStack() as running:
            try:
                delivery.submit(message())
                async with asyncio.timeout(60):
                    while delivery.stats.retries < 2:  # refused twice: nothing listens yet
                        await asyncio.sleep(0.05)
                await asyncio.to_thread(
                    running.enter_context, alertmanager(tmp_path / "am", config, port)
                )
                async with asyncio.timeout(60):
                    while delivery.stats.delivered < 1 and delivery.stats.failed == 0:
                        await asyncio.sleep(0.05)
                assert [a["labels"]["subject"] for a in active(url)] == ["China over US"]
            finally:
                await delivery.stop()
        return delivery

    delivery = asyncio.run(scenario())
    assert delivery.stats.delivered == 1 and delivery.stats.failed == 0
    assert delivery.stats.retries >= 2
