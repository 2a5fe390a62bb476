"""The dashboard's HTTP server (aiohttp): the static page, and a JSON API it polls.

- ``GET /`` the page; ``GET /static/...`` its script, styles and the vendored chart library;
- ``GET /api/meta`` the pickers' choices;
- ``GET /api/snapshot?dimension=&measure=&window=&identified=&weeks=`` everything shown;
- ``GET /healthz``.

Queries block (they go to the store over HTTP), so they run in a thread; a snapshot
is kept for ``ttl`` seconds per view and built once however many pages poll it.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import orjson
from aiohttp import web

from tokenshare.analysts.queries import Query
from tokenshare.dashboard import snapshot
from tokenshare.dashboard.snapshot import View
from tokenshare.dashboard.vendor import ASSETS, STATIC, is_vendored

#: Errors a query may raise that mean "the store cannot answer now" (shown, then retried).
Unavailable = tuple[type[Exception], ...]


class NotVendored(RuntimeError):
    """The chart library was not fetched at build time."""


class SnapshotCache:
    """The newest snapshot per view, rebuilt when older than `ttl` seconds."""

    def __init__(self, build: Callable[[View], bytes], ttl: float) -> None:
        self._build = build
        self._ttl = ttl
        self._kept: dict[View, tuple[float, bytes]] = {}
        self._lock = asyncio.Lock()

    async def get(self, view: View) -> bytes:
        async with self._lock:  # one build at a time: the store runs queries in turn anyway
            kept = self._kept.get(view)
            if kept is not None and time.monotonic() - kept[0] < self._ttl:
                return kept[1]
            body = await asyncio.to_thread(self._build, view)
            self._kept[view] = (time.monotonic(), body)
            return body


def _json(doc: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(doc), status=status, content_type="application/json")


def build_app(
    query: Query,
    database: str,
    *,
    unavailable: Unavailable = (),
    hint: str = "start the store: `tokenshare store`",
    ttl: float = 1.0,
    static: Path = STATIC,
) -> web.Application:
    """The dashboard over `query` (read-only; see ``snapshot``). Errors of the
    `unavailable` types become a 503 with `hint`, which the page shows until they pass."""
    if not all(is_vendored(asset) for asset in ASSETS):
        raise NotVendored(
            "the chart library is not vendored: run `make install` "
            "(or `python -m tokenshare.dashboard.vendor`)"
        )
    cache = SnapshotCache(lambda view: snapshot.build(query, database, view).to_json(), ttl)

    async def index(_: web.Request) -> web.FileResponse:
        return web.FileResponse(static / "index.html")

    async def meta(_: web.Request) -> web.Response:
        return _json({**snapshot.vocabulary(), "default": asdict(View())})

    async def snap(request: web.Request) -> web.Response:
        try:
            view = View.parse(request.query)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        try:
            body = await cache.get(view)
        except unavailable as exc:
            return _json({"error": str(exc), "hint": hint}, 503)
        return web.Response(body=body, content_type="application/json")

    async def healthz(_: web.Request) -> web.Response:
        return _json({"status": "alive"})

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/api/meta", meta)
    app.router.add_get("/api/snapshot", snap)
    app.router.add_get("/healthz", healthz)
    app.router.add_static("/static", static)
    return app


async def serve(app: web.Application, host: str, port: int, ready: Callable[[str], None]) -> None:
    """Serve `app` on host:port (0: any free) until SIGINT or SIGTERM; `ready` gets the URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    ready(f"http://{bound_host}:{bound_port}/")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
