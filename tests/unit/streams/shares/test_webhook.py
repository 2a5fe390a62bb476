"""The alert webhook retries with backoff, counts failures, and never blocks."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from tokenshare.processes import free_ports
from tokenshare.streams.shares.webhook import Webhook


async def serve(failures: int) -> tuple[web.AppRunner, list[dict[str, Any]], str]:
    received: list[dict[str, Any]] = []
    calls = {"n": 0}

    async def hook(request: web.Request) -> web.Response:
        calls["n"] += 1
        if calls["n"] <= failures:
            return web.Response(status=503)
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    (port,) = free_ports(1)
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, received, f"http://127.0.0.1:{port}/hook"


async def deliver(url: str, alerts: list[dict[str, Any]], attempts: int = 4) -> Webhook:
    hook = Webhook(url, attempts=attempts, first_delay=0.01)
    await hook.start()
    for alert in alerts:
        hook.submit(alert)  # returns at once: queued
    for _ in range(300):
        if hook.stats.delivered + hook.stats.failed == len(alerts):
            break
        await asyncio.sleep(0.02)
    await hook.stop()
    return hook


def test_retries_until_delivered() -> None:
    async def scenario() -> None:
        runner, received, url = await serve(failures=2)
        hook = await deliver(url, [{"alert_id": "a1", "text": "China overtook US"}])
        await runner.cleanup()
        assert received == [{"alert_id": "a1", "text": "China overtook US"}]
        assert hook.stats.retries == 2 and hook.stats.delivered == 1 and hook.stats.failed == 0

    asyncio.run(scenario())


def test_gives_up_counts_and_carries_on() -> None:
    async def scenario() -> None:
        runner, received, url = await serve(failures=3)
        hook = await deliver(
            url, [{"alert_id": "a1", "text": "x"}, {"alert_id": "a2", "text": "y"}], attempts=3
        )
        await runner.cleanup()
        assert hook.stats.failed == 1  # the first alert: 3 attempts, 3 failures
        assert hook.stats.delivered == 1 and received == [{"alert_id": "a2", "text": "y"}]

    asyncio.run(scenario())


def test_unreachable_endpoint_is_counted_not_raised() -> None:
    async def scenario() -> None:
        (port,) = free_ports(1)  # nothing listens there
        hook = await deliver(f"http://127.0.0.1:{port}/hook", [{"alert_id": "a"}], attempts=2)
        assert hook.stats.failed == 1 and hook.stats.delivered == 0

    asyncio.run(scenario())
