"""The ClickHouse HTTP interface, for reads, in front of an engine that answers them.

What ClickHouse's own clients send (clickhouse-connect, the JDBC driver that
DBeaver uses, Grafana's datasource, curl) is taken as a ClickHouse server takes
it: the query in ``?query=`` and/or the body (GET or POST), ``default_format``
or ``X-ClickHouse-Format``, ``database`` or ``X-ClickHouse-Database``,
``param_<name>`` bindings, any other parameter as a setting, and credentials
from ``X-ClickHouse-User``/``Key``, ``user``/``password`` or Basic auth (the
endpoint listens on loopback and is read-only; it does not check them). The
answer is in the format asked for, produced by the engine itself, with the
``X-ClickHouse-Query-Id``, ``-Format``, ``-Timezone`` and ``-Summary`` headers;
errors are ClickHouse's ``Code: N. DB::Exception: ...`` text with
``X-ClickHouse-Exception-Code``. Responses are compressed when the client asks
(``enable_http_compression=1`` and ``Accept-Encoding``: zstd, lz4, gzip,
deflate), and in ClickHouse's own LZ4 blocks with ``compress=1``. ``/ping``
and ``/replicas_status`` answer ``Ok.`` without touching the engine;
``/readyz`` runs ``SELECT 1`` on a connection of its own, so no health check
waits behind an analyst's query.
"""

from __future__ import annotations

import gzip
import importlib
import struct
import sys
import threading
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import orjson

from tokenshare.sinks import native

#: URL parameters that steer the HTTP exchange rather than the query. They are
#: accepted and not passed on as settings (sessions are not kept: every request
#: runs on a fresh read-only connection, so there is no state to share).
TRANSPORT_PARAMETERS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "enable_http_compression",
        "http_zlib_compression_level",
        "wait_end_of_query",
        "buffer_size",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
        "http_wait_end_of_query",
        "http_response_buffer_size",
        "role",
        "quota_key",
        "client_protocol_version",
        "add_http_cors_header",
    }
)

#: ClickHouse error codes -> HTTP status, as a ClickHouse server maps them.
_STATUS = {
    62: 400,  # SYNTAX_ERROR
    73: 400,  # UNKNOWN_FORMAT
    115: 400,  # UNKNOWN_SETTING
    456: 400,  # UNKNOWN_QUERY_PARAMETER
    457: 400,  # BAD_QUERY_PARAMETER
    47: 404,  # UNKNOWN_IDENTIFIER
    60: 404,  # UNKNOWN_TABLE
    81: 404,  # UNKNOWN_DATABASE
    164: 403,  # READONLY
    497: 403,  # ACCESS_DENIED
    159: 500,  # TIMEOUT_EXCEEDED
}


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One query as a ClickHouse client sent it."""

    sql: str
    default_format: str
    parameters: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    database: str | None = None
    #: ``client_protocol_version``: the Native revision the client reads (0: none).
    protocol: int = 0


@dataclass(frozen=True, slots=True)
class Answer:
    body: bytes
    format: str
    read_rows: int = 0
    read_bytes: int = 0
    elapsed_ns: int = 0


class EngineError(Exception):
    """The engine refused the query; ``str()`` is ClickHouse's own message."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class Reader(Protocol):
    timezone: str
    version: str

    def answer(self, request: ReadRequest) -> Answer: ...

    def ready(self) -> None:
        """Raise EngineError unless the engine answers ``SELECT 1`` now."""

    def column_types(self, request: ReadRequest) -> list[str]:
        """The result's column types in full (``DESCRIBE``); raise EngineError if unknown."""


def content_type(fmt: str) -> str:
    name = fmt.lower()
    if name.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if name.startswith("csv"):
        return "text/csv; charset=UTF-8; header=absent"
    if name.startswith("json") or name in ("ndjson", "jsonl"):
        return "application/json; charset=UTF-8"
    if name == "xml":
        return "application/xml; charset=UTF-8"
    if name.startswith(("pretty", "vertical", "markdown", "values", "raw")):
        return "text/plain; charset=UTF-8"
    return "application/octet-stream"


def _optional(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _zstd() -> ModuleType | None:
    return _optional("compression.zstd") or _optional("backports.zstd")


def _encoders() -> dict[str, Callable[[bytes], bytes]]:
    """Content-Encoding -> compressor, for what this interpreter has."""
    out: dict[str, Callable[[bytes], bytes]] = {
        "gzip": lambda data: gzip.compress(data, compresslevel=3),
        "deflate": lambda data: zlib.compress(data, 3),
    }
    zstd = _zstd()
    if zstd is not None:
        out["zstd"] = zstd.compress
    lz4 = _optional("lz4.frame")
    if lz4 is not None:
        out["lz4"] = lz4.compress
    return out


def _decoders() -> dict[str, Callable[[bytes], bytes]]:
    out: dict[str, Callable[[bytes], bytes]] = {"gzip": gzip.decompress, "deflate": zlib.decompress}
    zstd = _zstd()
    if zstd is not None:
        out["zstd"] = zstd.decompress
    lz4 = _optional("lz4.frame")
    if lz4 is not None:
        out["lz4"] = lz4.decompress
    return out


ENCODERS = _encoders()
DECODERS = _decoders()

#: ClickHouse's own block compression (``compress=1``, the JDBC driver's default):
#: blocks of checksum (CityHash128 v1.0.2 of the rest), method 0x82 (LZ4), the
#: compressed size with the 9-byte header, the plain size, the LZ4 block.
_LZ4_METHOD = 0x82
_NATIVE_BLOCK = 1 << 20


def native_compress(data: bytes) -> bytes:
    """`data` in ClickHouse's compressed-block framing, 1 MiB per block."""
    lz4_block = importlib.import_module("lz4.block")
    cityhash = importlib.import_module("clickhouse_cityhash.cityhash")
    out = bytearray()
    for start in range(0, max(len(data), 1), _NATIVE_BLOCK):
        chunk = data[start : start + _NATIVE_BLOCK]
        packed = lz4_block.compress(chunk, store_size=False)
        block = struct.pack("<BII", _LZ4_METHOD, len(packed) + 9, len(chunk)) + packed
        checksum = int(cityhash.CityHash128(block))
        out += struct.pack("<QQ", checksum >> 64, checksum & 0xFFFFFFFFFFFFFFFF) + block
    return bytes(out) if data else b""


def choose_encoding(accept: str) -> str | None:
    """The first encoding of the client's Accept-Encoding that this side can write."""
    for part in accept.split(","):
        name = part.split(";", 1)[0].strip().lower()
        if name in ENCODERS:
            return name
    return None


def parse_request(query: dict[str, str], headers: Any, body: bytes) -> ReadRequest:
    """A ClickHouse HTTP request as a ReadRequest (raises EngineError on bad input)."""
    text = query.get("query", "")
    if body.strip():
        text = f"{text} {body.decode()}" if text else body.decode()
    if not text.strip():
        raise EngineError("Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)", 62)
    parameters = {k[6:]: v for k, v in query.items() if k.startswith("param_")}
    settings = {
        k: v
        for k, v in query.items()
        if k not in TRANSPORT_PARAMETERS and not k.startswith("param_")
    }
    fmt = query.get("default_format") or headers.get("X-ClickHouse-Format") or "TabSeparated"
    database = query.get("database") or headers.get("X-ClickHouse-Database")
    version = query.get("client_protocol_version") or "0"
    if not version.isdigit():
        raise EngineError(
            f"Code: 27. DB::Exception: Cannot parse client_protocol_version={version!r} "
            "as a number. (CANNOT_PARSE_INPUT_ASSERTION_FAILED)",
            27,
        )
    return ReadRequest(text, fmt, parameters, settings, database, int(version))


def at_protocol(reader: Reader, request: ReadRequest, answer: Answer) -> Answer:
    """`answer` as Native for the client's protocol version (``sinks.native``): the
    engine writes protocol 0, where a top-level DateTime('Zone') loses its zone, so
    the full types are asked of the engine (``DESCRIBE``) when such a column is there."""
    if answer.format != "Native" or request.protocol <= 0:
        return answer
    try:
        zoned: list[str | None] = []
        if request.protocol >= native.WITH_TIME_ZONE and "DateTime" in native.top_level_types(
            answer.body
        ):
            try:
                full = reader.column_types(request)
            except EngineError:  # not a SELECT DESCRIBE can name: keep the types written
                full = []
            zoned = [t if t.startswith("DateTime(") else None for t in full]
        body = native.upgrade(answer.body, request.protocol, zoned)
    except native.NativeError as exc:
        raise EngineError(
            f"Code: 1. DB::Exception: {exc}; ask for another format (RowBinaryWithNamesAndTypes, "
            "Arrow, JSON). (UNSUPPORTED_METHOD)",
            1,
        ) from None
    return Answer(body, answer.format, answer.read_rows, answer.read_bytes, answer.elapsed_ns)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up
            super().handle_error(request, client_address)


def serve(reader: Reader, port: int) -> ThreadingHTTPServer:
    """Serve the interface on 127.0.0.1:`port` (0 picks a free port) in daemon threads,
    one per connection; the engine runs queries of different connections in parallel."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the drivers pool their connections
        server_version = "tokenshare-store"

        def do_GET(self) -> None:
            self._handle(b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
            if body and encoding and encoding != "identity":
                decode = DECODERS.get(encoding)
                if decode is None:
                    self._error(
                        EngineError(
                            f"Code: 1. DB::Exception: Unsupported Content-Encoding {encoding}. "
                            "(UNSUPPORTED_METHOD)",
                            1,
                        )
                    )
                    return
                body = decode(body)
            self._handle(body)

        def _handle(self, body: bytes) -> None:
            url = urlsplit(self.path)
            query = dict(parse_qsl(url.query, keep_blank_values=True))
            if url.path in ("/ping", "/replicas_status") or (
                url.path == "/" and "query" not in query and not body
            ):
                self._send(200, b"Ok.\n", "text/plain; charset=UTF-8")
            elif url.path in ("/health", "/healthz"):
                self._send(200, b'{"status":"alive"}', "application/json")
            elif url.path == "/readyz":
                try:
                    reader.ready()
                except EngineError as exc:
                    doc = orjson.dumps({"ready": False, "error": str(exc)})
                    self._send(503, doc, "application/json")
                else:
                    self._send(200, b'{"ready":true}', "application/json")
            elif url.path == "/":
                self._query(query, body)
            else:
                hint = b"Not found: use / (ClickHouse HTTP), /ping or /readyz\n"
                self._send(404, hint, "text/plain; charset=UTF-8")

        def _query(self, query: dict[str, str], body: bytes) -> None:
            query_id = query.get("query_id") or str(uuid.uuid4())
            try:
                request = parse_request(query, self.headers, body)
                answer = at_protocol(reader, request, reader.answer(request))
            except EngineError as exc:
                self._error(exc, query_id)
                return
            summary = {
                "read_rows": str(answer.read_rows),
                "read_bytes": str(answer.read_bytes),
                "written_rows": "0",
                "written_bytes": "0",
                "total_rows_to_read": str(answer.read_rows),
                "result_rows": "0",
                "result_bytes": str(len(answer.body)),
                "elapsed_ns": str(answer.elapsed_ns),
            }
            body_out = native_compress(answer.body) if query.get("compress") == "1" else answer.body
            extra = {
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Format": answer.format,
                "X-ClickHouse-Timezone": reader.timezone,
                "X-ClickHouse-Server-Display-Name": "tokenshare-store",
                "X-ClickHouse-Summary": orjson.dumps(summary).decode(),
            }
            encoding = (
                choose_encoding(self.headers.get("Accept-Encoding") or "")
                if query.get("enable_http_compression") in ("1", "true")
                else None
            )
            if encoding is not None:
                body_out = ENCODERS[encoding](body_out)
                extra["Content-Encoding"] = encoding
            self._send(200, body_out, content_type(answer.format), extra)

        def _error(self, exc: EngineError, query_id: str | None = None) -> None:
            text = str(exc).strip()
            body_out = f"{text} (version {reader.version})\n".encode()
            extra = {"X-ClickHouse-Exception-Code": str(exc.code)}
            if query_id:
                extra["X-ClickHouse-Query-Id"] = query_id
            self._send(_STATUS.get(exc.code, 500), body_out, "text/plain; charset=UTF-8", extra)

        def _send(
            self,
            status: int,
            body: bytes,
            kind: str,
            extra: dict[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: queries are not logs
            return

    server = _Server(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, name="query-server", daemon=True).start()
    return server
