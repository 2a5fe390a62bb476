"""Read-only SQL for analysts, embedded or server, while the store runs.

Embedded mode has one owner process per data path (``sinks.owner``). While a
store runs, it serves queries over HTTP on loopback from its own read-only
engine session; when none runs, the caller takes ownership briefly and opens
the engine itself. Server mode connects read-only straight to the server.
Either way the session has ``readonly=1``: writes and setting changes fail.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from tokenshare.settings import Settings
from tokenshare.sinks.clickhouse import connect
from tokenshare.sinks.owner import OwnerLock, StoreBusy, data_path_of, read_owner


class QueryError(RuntimeError):
    """ClickHouse refused the query; the message is ClickHouse's own."""


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]

    def to_json(self) -> bytes:
        return orjson.dumps(
            {"columns": self.columns, "types": self.types, "rows": self.rows}, default=str
        )

    @classmethod
    def from_json(cls, raw: bytes) -> QueryResult:
        doc = orjson.loads(raw)
        return cls(doc["columns"], doc["types"], doc["rows"])


class ReadOnlySession:
    """One read-only client, serialised: the embedded engine runs one query at a time here."""

    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.database = database
        self._lock = threading.Lock()

    def run(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult:
        with self._lock:
            try:
                result = self.client.query(sql, parameters=parameters or {})
            except Exception as exc:  # the driver's error types differ by backend
                raise QueryError(_clean(str(exc))) from exc
        return QueryResult(
            list(result.column_names),
            [t.name for t in result.column_types],
            [list(r) for r in result.result_rows],
        )


def _clean(message: str) -> str:
    """ClickHouse's first line, without the driver's traceback text."""
    return message.strip().splitlines()[0][:2000] if message.strip() else "query failed"


def serve(session: ReadOnlySession, port: int) -> ThreadingHTTPServer:
    """Serve POST /query on 127.0.0.1:`port` (0 picks a free port) in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path != "/query":
                self._reply(404, b'{"error":"POST /query"}')
                return
            try:
                doc = orjson.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                result = session.run(str(doc["sql"]), doc.get("parameters"))
            except QueryError as exc:
                self._reply(400, orjson.dumps({"error": str(exc)}))
                return
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                self._reply(400, orjson.dumps({"error": f"bad request: {exc}"}))
                return
            self._reply(200, result.to_json())

        def do_GET(self) -> None:
            if self.path in ("/health", "/healthz"):
                self._reply(200, b'{"status":"alive"}')
            elif self.path == "/readyz":
                try:
                    session.run("SELECT 1")
                except QueryError as exc:
                    self._reply(503, orjson.dumps({"ready": False, "error": str(exc)}))
                else:
                    self._reply(200, b'{"ready":true}')
            else:
                self._reply(404, b'{"error":"GET /healthz or /readyz, POST /query"}')

        def _reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: queries are not logs
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, name="query-server", daemon=True).start()
    return server


class QueryServer:
    """The store's read-only SQL endpoint: its own read-only engine session, served
    on loopback while the store runs (``url``; published in the owner file)."""

    def __init__(self, settings: Settings) -> None:
        reader = connect(settings.dsn, readonly=True)
        session = ReadOnlySession(reader, settings.clickhouse_database)
        self._server = serve(session, settings.store_query_port)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()


def run_query(
    settings: Settings, sql: str, parameters: dict[str, Any] | None = None
) -> QueryResult:
    """Run read-only `sql` wherever the store lives (see module docstring)."""
    if not settings.embedded:
        client = connect(settings.dsn, readonly=True)
        return ReadOnlySession(client, settings.clickhouse_database).run(sql, parameters)
    data_path = data_path_of(settings.dsn)
    owner = read_owner(data_path)
    if owner is not None:
        if not owner.query_url:
            raise StoreBusy(
                f"the store (pid {owner.pid}) is starting and not serving queries yet; retry"
            )
        return _remote(owner.query_url, sql, parameters)
    lock = OwnerLock(data_path)
    lock.acquire()
    try:
        client = connect(settings.dsn, readonly=True)
        try:
            return ReadOnlySession(client, settings.clickhouse_database).run(sql, parameters)
        finally:
            client.close()
    finally:
        lock.release()


def _remote(url: str, sql: str, parameters: dict[str, Any] | None) -> QueryResult:
    body = orjson.dumps({"sql": sql, "parameters": parameters or {}}, default=str)
    request = urllib.request.Request(
        f"{url}/query", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return QueryResult.from_json(response.read())
    except urllib.error.HTTPError as exc:
        detail = orjson.loads(exc.read() or b"{}").get("error", str(exc))
        raise QueryError(detail) from exc
