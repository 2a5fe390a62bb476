"""The store's SQL port speaks ClickHouse's HTTP interface to ClickHouse's own clients:
clickhouse-connect, curl, tokenshare's own http:// DSN path and `tokenshare sql`."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.query_store import BIG, ROWS, query_store, settings_for
from tokenshare.localstack.jdbc import ensure_driver
from tokenshare.processes import wait_until
from tokenshare.sinks.clickhouse import connect

SELECT = "SELECT n, at, price, label FROM tokenshare.typed ORDER BY n"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    folder = tmp_path_factory.mktemp("query-store")
    with query_store(folder) as url:
        yield folder, url


def _curl(*args: str) -> tuple[dict[str, str], bytes]:
    """curl's response headers (lower-case names) and body."""
    done = subprocess.run(
        ["curl", "-sS", "-D", "-", *args], capture_output=True, check=True, timeout=60
    )
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    headers[":status"] = lines[0].split()[1]
    return headers, body


def test_clickhouse_connect_reads_typed_columns(store: tuple[Path, str]) -> None:
    _, url = store
    port = urlsplit(url).port
    client = clickhouse_connect.get_client(host="127.0.0.1", port=port)
    result = client.query(SELECT)
    assert [t.name for t in result.column_types][2:] == ["Decimal(18, 4)", "String"]
    assert result.column_types[0].name == "UInt64"
    rows = result.result_rows
    assert [r[0] for r in rows] == [1, BIG]
    assert [r[2] for r in rows] == [r[2] for r in ROWS]
    # Native at the client's protocol version: DateTime keeps its zone, as from a server.
    assert result.column_types[1].name == "DateTime('Asia/Shanghai')"
    assert [str(r[1].tzinfo) for r in rows] == ["Asia/Shanghai"] * 2
    assert [r[1] for r in rows] == [r[1] for r in ROWS]
    bound = client.query(
        "SELECT label FROM typed WHERE n = {n:UInt64}", parameters={"n": BIG}
    ).result_rows
    assert bound == [("y",)]
    limited = client.query(
        "SELECT getSetting('max_execution_time')", settings={"max_execution_time": 9}
    )
    assert limited.result_rows == [(9.0,)]
    with pytest.raises(Exception, match="164"):
        client.command("DROP TABLE tokenshare.typed")
    assert client.query("SELECT count() FROM typed").result_rows == [(2,)]
    client.close()


def test_tokenshare_http_dsn_path(store: tuple[Path, str]) -> None:
    _, url = store
    client = connect(url, readonly=True)  # sinks.clickhouse, as for a server DSN
    assert client.query(SELECT).result_rows[1][0] == BIG
    arrow = client.query_arrow(SELECT)  # the engine's own Arrow, passed through
    assert arrow.schema.field("n").type == pa.uint64()
    assert arrow.schema.field("price").type == pa.decimal128(18, 4)
    assert arrow.column("n").to_pylist() == [1, BIG]
    client.close()


def test_curl(store: tuple[Path, str]) -> None:
    _, url = store
    headers, body = _curl(f"{url}/ping")
    assert body == b"Ok.\n"
    headers, body = _curl(
        f"{url}/?query=SELECT%20n,%20at%20FROM%20tokenshare.typed%20ORDER%20BY%20n"
    )
    assert headers[":status"] == "200" and headers["x-clickhouse-format"] == "TabSeparated"
    assert body.decode().splitlines() == ["1\t2026-01-01 10:00:00", f"{BIG}\t2026-02-01 00:30:00"]
    assert json.loads(headers["x-clickhouse-summary"])["read_rows"] == "2"
    assert headers["x-clickhouse-query-id"]
    # body, param_ binding, X-ClickHouse-Format and -Database headers
    headers, body = _curl(
        f"{url}/?param_label=y",
        "-H", "X-ClickHouse-Format: JSONEachRow",
        "-H", "X-ClickHouse-Database: tokenshare",
        "-H", "X-ClickHouse-User: default",
        "--data-binary", "SELECT n, price FROM typed WHERE label = {label:String}",
    )  # fmt: skip
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"n": BIG, "price": -3.5}
    # the query's own FORMAT wins over default_format
    headers, body = _curl(
        f"{url}/?default_format=CSV", "--data-binary", f"{SELECT} FORMAT JSONCompact"
    )
    assert headers["x-clickhouse-format"] == "JSONCompact"
    assert json.loads(body)["meta"][1]["type"] == "DateTime('Asia/Shanghai')"
    # compression, when asked for
    headers, body = _curl(
        f"{url}/?enable_http_compression=1&query=SELECT%20label%20FROM%20tokenshare.typed%20ORDER%20BY%20n",
        "-H", "Accept-Encoding: gzip",
    )  # fmt: skip
    assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == b"x\ny\n"
    # ClickHouse's errors, with their codes
    headers, body = _curl(f"{url}/", "--data-binary", "SELECT nope FROM tokenshare.typed")
    assert headers["x-clickhouse-exception-code"] == "47" and headers[":status"] == "404"
    assert body.startswith(b"Code: 47. DB::Exception:")
    headers, body = _curl(f"{url}/", "--data-binary", "INSERT INTO tokenshare.typed VALUES (2)")
    assert headers["x-clickhouse-exception-code"] == "164" and headers[":status"] == "403"
    # Native at a client protocol version: block info, then the zone in the type name
    headers, body = _curl(
        f"{url}/?client_protocol_version=54405&default_format=Native",
        "--data-binary", "SELECT at FROM tokenshare.typed LIMIT 1",
    )  # fmt: skip
    assert headers[":status"] == "200" and body.startswith(b"\x01\x00\x02\xff\xff\xff\xff\x00")
    assert b"\x19DateTime('Asia/Shanghai')" in body
    # a type whose Native encoding depends on the version is refused, with what to do
    headers, body = _curl(
        f"{url}/?client_protocol_version=54460&default_format=Native",
        "--data-binary", "SELECT 1::Variant(UInt8, String) AS v",
    )  # fmt: skip
    assert headers["x-clickhouse-exception-code"] == "1" and b"another format" in body


def test_queries_run_in_parallel_and_health_checks_never_wait(store: tuple[Path, str]) -> None:
    _, url = store
    slow = "SELECT sleepEachRow(0.5) FROM numbers(8) SETTINGS max_block_size = 1 -- slow"
    done: list[bytes] = []

    def run() -> None:
        request = urllib.request.Request(f"{url}/", data=slow.encode())
        with urllib.request.urlopen(request, timeout=120) as reply:
            done.append(reply.read())

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    client = connect(url, readonly=True)

    def both_running() -> bool:
        rows = client.query("SELECT count() FROM system.processes WHERE query LIKE '%-- slow'")
        return bool(rows.result_rows[0][0] == 2)

    wait_until(both_running, 60, "two slow queries running at once")
    with urllib.request.urlopen(f"{url}/readyz", timeout=60) as reply:
        assert reply.status == 200
    with urllib.request.urlopen(f"{url}/ping", timeout=60) as reply:
        assert reply.read() == b"Ok.\n"
    assert both_running(), "the health checks answered only after the slow queries"
    for thread in threads:
        thread.join(120)
    assert len(done) == 2
    client.close()


def test_the_official_jdbc_driver(store: tuple[Path, str]) -> None:
    """DBeaver's driver, with its defaults (compress=1: ClickHouse's LZ4 blocks)."""
    _, url = store
    classpath = ":".join(str(jar) for jar in ensure_driver())
    program = Path(__file__).with_name("JdbcRead.java")
    done = subprocess.run(
        ["java", "-cp", classpath, str(program), f"jdbc:clickhouse:{url}/tokenshare"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "column at DateTime('Asia/Shanghai')" in lines
    assert "column price Decimal(18, 4)" in lines and "column n UInt64" in lines
    assert f"row {BIG} | 2026-02-01 00:30:00.0 | -3.5000 | y" in lines
    assert "row 1 | 2026-01-01 10:00:00.0 | 1.2345 | x" in lines
    assert "bound y" in lines
    refused = [line for line in lines if line.startswith("refused ")]
    assert refused and "Code: 164" in refused[0] and "ALLOWED drop" not in lines


def _sql(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    s = settings_for(folder)
    env = {**os.environ, "TOKENSHARE_HOME": str(folder), "TOKENSHARE_CLICKHOUSE_DSN": s.dsn}
    return subprocess.run(
        [sys.executable, "-m", "tokenshare", "sql", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _parquet_schema(path: Path) -> Any:
    return pq.read_table(path).schema


def test_tokenshare_sql_parquet_is_typed_with_and_without_the_store(tmp_path: Path) -> None:
    online, offline = tmp_path / "online.parquet", tmp_path / "offline.parquet"
    with query_store(tmp_path):
        done = _sql(tmp_path, SELECT, "--format", "parquet", "-o", str(online))
        assert done.returncode == 0, done.stderr
        refused = _sql(tmp_path, "SELECT 1", "--offline")
        assert refused.returncode == 1 and "owned by a running store" in refused.stderr
        shown = _sql(tmp_path, SELECT, "--format", "json")
        assert json.loads(shown.stdout)[1]["n"] == BIG
    stopped = _sql(tmp_path, "SELECT 1")
    assert stopped.returncode == 1 and "store not serving" in stopped.stderr
    assert "--offline" in stopped.stderr
    done = _sql(tmp_path, SELECT, "--format", "parquet", "-o", str(offline), "--offline")
    assert done.returncode == 0, done.stderr
    schema = _parquet_schema(online)
    assert schema == _parquet_schema(offline)
    assert schema.field("n").type == pa.uint64()
    assert schema.field("price").type == pa.decimal128(18, 4)
    table = pq.read_table(io.BytesIO(online.read_bytes()))
    assert table.column("n").to_pylist() == [1, BIG]
