"""What each alert destination posts: Slack-compatible text, Alertmanager's postable
alerts, the alert's own JSON; and that Delivery builds one destination per URL set."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from tests.factories import crossover_alert
from tokenshare.processes import free_ports
from tokenshare.schema.outputs import AlertMessage
from tokenshare.settings import Settings
from tokenshare.streams.shares.alertmanager import Alertmanager, alertname, postable_alert
from tokenshare.streams.shares.delivery import Delivery
from tokenshare.streams.shares.slack import SlackWebhook, slack_text
from tokenshare.streams.shares.webhook import Webhook


def message(**override: Any) -> AlertMessage:
    return AlertMessage.model_validate({**crossover_alert(), **override})


def test_slack_text_escapes_and_says_severity_rule_window_and_status() -> None:
    alert = message(
        subject="China>US",
        text="China <overtook> US & Co",
        explanation="China's token share (41.2%) passed US's (39.7%) by 1.5 points",
        severity="critical",
    )
    assert slack_text(alert) == (
        ":rotating_light: *China &lt;overtook&gt; US &amp; Co*\n"
        "China's token share (41.2%) passed US's (39.7%) by 1.5 points\n"
        "_crossover · origin_bloc by tokens · 2026-W07 (final) · crossover-test-1_"
    )


def test_slack_text_of_an_input_alert_without_explanation() -> None:
    alert = message(
        rule="dead_letter_breaker",
        dimension="input",
        measure="requests",
        text="dead letters above 5% of input",
        severity="info",
    )
    assert slack_text(alert) == (
        ":information_source: *dead letters above 5% of input*\n"
        "_dead_letter_breaker · input · 2026-W07 (final) · crossover-test-1_"
    )


def test_postable_alert_labels_identify_the_finding_not_its_status() -> None:
    now = datetime(2026, 2, 16, 9, 30, tzinfo=UTC)
    provisional = postable_alert(message(status="provisional", text="China leads"), now=now)
    final = postable_alert(message(), now=now, generator_url="http://w:6066/alerts")
    assert provisional["labels"] == final["labels"]  # one Alertmanager alert, updated
    assert final["labels"]["alertname"] == "TokenshareCrossover"
    assert (provisional["annotations"]["status"], final["annotations"]["status"]) == (
        "provisional",
        "final",
    )
    assert final["annotations"]["summary"] == "China overtook US"
    assert final["startsAt"] == "2026-02-16T09:30:00+00:00"
    assert final["endsAt"] == (now + timedelta(days=1)).isoformat()
    assert final["generatorURL"] == "http://w:6066/alerts" and "generatorURL" not in provisional
    assert alertname("catalog_gap") == "TokenshareCatalogGap"


def test_delivery_builds_one_destination_per_url_set(no_tokenshare_env: None) -> None:
    none = Delivery.from_settings(Settings())
    assert none.destinations == []
    none.submit(crossover_alert())  # nothing configured: a no-op
    both = Delivery.from_settings(
        Settings(alertmanager_url="http://am:9093/", slack_webhook_url="https://hooks/x")
    )
    kinds = {type(d): d for d in both.destinations}
    assert set(kinds) == {SlackWebhook, Alertmanager}
    assert kinds[Alertmanager].endpoint == "http://am:9093/api/v2/alerts"


async def _serve(path: str, received: list[Any]) -> tuple[web.AppRunner, str]:
    async def handle(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post(path, handle)
    runner = web.AppRunner(app)
    await runner.setup()
    (port,) = free_ports(1)
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


def test_every_destination_gets_its_own_body() -> None:
    async def scenario() -> tuple[list[Any], list[Any], list[Any], Delivery]:
        hooks: list[Any] = []
        slack: list[Any] = []
        am: list[Any] = []
        servers = [
            await _serve("/hook", hooks),
            await _serve("/slack", slack),
            await _serve("/api/v2/alerts", am),
        ]
        (_, hook_url), (_, slack_url), (_, am_url) = servers
        delivery = Delivery.from_settings(
            Settings(
                alert_webhook_url=f"{hook_url}/hook",
                slack_webhook_url=f"{slack_url}/slack",
                alertmanager_url=am_url,
            ),
            first_delay=0.01,
        )
        await delivery.start()
        delivery.submit(message())  # a message
        delivery.submit(crossover_alert() | {"alert_id": "a2"})  # or its JSON form
        async with asyncio.timeout(30):
            while delivery.stats.delivered + delivery.stats.failed < 6:
                await asyncio.sleep(0.02)
        await delivery.stop()
        for runner, _ in servers:
            await runner.cleanup()
        return hooks, slack, am, delivery

    hooks, slack, am, delivery = asyncio.run(scenario())
    assert [h["alert_id"] for h in hooks] == ["crossover-test-1", "a2"]
    assert hooks[0] == message().model_dump(mode="json")
    assert [s["text"] for s in slack] == [slack_text(message()), slack_text(message(alert_id="a2"))]
    posted = [alert for batch in am for alert in batch]  # Alertmanager takes lists
    assert [a["annotations"]["alert_id"] for a in posted] == ["crossover-test-1", "a2"]
    stats = delivery.by_destination()
    assert {name: s.delivered for name, s in stats.items()} == {
        "webhook": 2,
        "Slack webhook": 2,
        "Alertmanager": 2,
    }
    assert delivery.stats.delivered == 6 and delivery.stats.failed == 0


def test_a_dict_that_is_no_alert_is_counted_not_posted() -> None:
    async def scenario() -> Webhook:
        received: list[Any] = []
        runner, url = await _serve("/api/v2/alerts", received)
        sink = Alertmanager(url, first_delay=0.01)
        await sink.start()
        sink.submit({"alert_id": "x", "text": "not a message"})
        async with asyncio.timeout(30):
            while sink.stats.failed < 1:
                await asyncio.sleep(0.02)
        await sink.stop()
        await runner.cleanup()
        assert received == []
        return sink

    sink = asyncio.run(scenario())
    assert sink.stats.failed == 1 and sink.stats.delivered == 0
