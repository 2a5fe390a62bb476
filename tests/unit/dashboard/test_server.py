"""The dashboard's HTTP API and static files (aiohttp's test client, a real socket), and
the build-time vendoring of the chart library."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from clickhouse_connect.driver.client import Client

from tokenshare.analysts.queries import Query
from tokenshare.dashboard import vendor
from tokenshare.dashboard.server import build_app


class Down(RuntimeError):
    pass


def run(app_query: Query, database: str, check: Callable[[TestClient], Awaitable[None]]) -> None:
    async def main() -> None:
        app = build_app(app_query, database, unavailable=(Down,), hint="start the store", ttl=60)
        async with TestClient(TestServer(app)) as client:
            await check(client)

    asyncio.run(main())


def test_page_vendored_library_and_snapshot(ch_client: Client, migrated: str) -> None:
    calls: list[str] = []

    def query(sql: str, params: dict[str, Any]) -> Any:
        calls.append(sql)
        return ch_client.query(sql, parameters=params).result_rows

    async def check(client: TestClient) -> None:
        page = await client.get("/")
        assert page.status == 200
        html = await page.text()
        assert "/static/vendor/uPlot.iife.min.js" in html and "/static/dashboard.js" in html
        for path in ("/static/vendor/uPlot.iife.min.js", "/static/dashboard.js"):
            reply = await client.get(path)
            assert reply.status == 200 and len(await reply.read()) > 1000, path
        meta = await (await client.get("/api/meta")).json()
        assert "origin_bloc" in meta["dimensions"] and meta["default"]["measure"] == "tokens"
        snap = await client.get("/api/snapshot", params={"dimension": "author"})
        doc = await snap.json()
        assert snap.status == 200 and doc["view"]["dimension"] == "author"
        assert doc["totals"]["events"] == 0 and doc["series"] == [] and doc["gaps"] == []
        made = len(calls)
        again = await client.get("/api/snapshot", params={"dimension": "author"})
        assert again.status == 200 and len(calls) == made  # kept for ttl: no new query
        bad = await client.get("/api/snapshot", params={"dimension": "nope"})
        assert bad.status == 400 and "origin_bloc" in (await bad.json())["error"]

    run(query, migrated, check)


def test_store_down_is_a_503_with_what_to_do() -> None:
    def query(sql: str, params: dict[str, Any]) -> Any:
        raise Down("no store is running for this data path")

    async def check(client: TestClient) -> None:
        reply = await client.get("/api/snapshot")
        assert reply.status == 503
        assert await reply.json() == {
            "error": "no store is running for this data path",
            "hint": "start the store",
        }

    run(query, "tokenshare", check)


def _tarball(folder: Path, files: dict[str, bytes]) -> Path:
    path = folder / vendor.UPLOT.tarball
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_a_tarball_that_is_not_the_pinned_one_is_refused_and_dropped(tmp_path: Path) -> None:
    tarball = _tarball(tmp_path, {name: b"tampered" for name in vendor.UPLOT.files})
    with pytest.raises(vendor.VendorError, match="not the pinned"):
        vendor.fetch(vendor.UPLOT, tmp_path)
    assert not tarball.exists()


def test_the_vendored_files_are_the_pinned_release() -> None:
    vendor.ensure()  # from the cache `make install` filled
    record = json.loads(vendor.UPLOT.record.read_text())
    assert record["version"] == vendor.UPLOT.version and record["licence"] == "MIT"
    cached = vendor.cache_dir() / vendor.UPLOT.tarball
    assert vendor.integrity_of(cached) == vendor.UPLOT.integrity
    with tarfile.open(cached, "r:gz") as archive:
        for member, name in vendor.UPLOT.files.items():
            source = archive.extractfile(member)
            assert source is not None
            assert (vendor.VENDOR / name).read_bytes() == source.read()
