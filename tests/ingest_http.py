"""The HTTP ingest endpoint on a real loopback port, and a client for it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from tokenshare.producers.adapters.http_ingest import create_app
from tokenshare.settings import Settings

TOKEN = secrets.token_urlsafe(24)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@asynccontextmanager
async def endpoint(
    settings: Settings, token: str | None = TOKEN, *, ready: bool = True
) -> AsyncIterator[ClientSession]:
    """The endpoint, and a client for it; `ready`: once it has connected to Kafka."""
    server = TestServer(create_app(settings, token=token))
    async with server, ClientSession(base_url=str(server.make_url("/"))) as http:
        if ready:
            for _ in range(300):
                async with http.get("/readyz") as response:
                    if response.status == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the endpoint never connected to Kafka")
        yield http


def run(
    settings: Settings, scenario: Callable[[ClientSession], Awaitable[None]], **kw: Any
) -> None:
    async def main() -> None:
        async with endpoint(settings, **kw) as http:
            await scenario(http)

    asyncio.run(main())


async def post(
    http: ClientSession, body: Any, path: str = "/v1/events", **headers: str
) -> tuple[int, Any, Any]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    sent = {**AUTH, "Content-Type": "application/json", **headers}
    async with http.post(path, data=data, headers=sent) as response:
        return response.status, await response.json(), response.headers
