"""Read-only SQL, embedded or server, while the store runs.

Embedded mode has one owner per data path (``sinks.owner``): the store. It
serves the ClickHouse HTTP interface (``sinks.ch_http``) on loopback from its
own engine, each query on a fresh ``readonly=2`` connection (``sinks.read_only``
says what runs), so queries run in parallel and health checks never queue
behind them. Every reader goes there through tokenshare's own ``http://`` DSN
path (clickhouse-connect): when no store serves, a reader gets
:class:`StoreNotServing` and never opens the engine or takes the lock, so a
store restarted right after a crash finds its data path free. Opening the engine
directly is an explicit offline choice (``offline=True``, ``tokenshare sql
--offline``, ``TOKENSHARE_QUERY_OFFLINE=1``): the reader then holds the lock and
serves itself the same interface for the time of its query, so results have
the same types either way. Server mode connects read-only to the server.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import chdb
import orjson
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError

from tokenshare.settings import Settings
from tokenshare.sinks import read_only
from tokenshare.sinks.ch_http import Answer, EngineError, ReadRequest, serve
from tokenshare.sinks.clickhouse import StoreError, connect, split_chdb_dsn
from tokenshare.sinks.owner import OwnerLock, StoreBusy, data_path_of, read_owner

#: Analyst queries running at once in the store; more wait for a slot. Health
#: checks have a connection of their own and never wait.
MAX_CONCURRENT_QUERIES = 8

#: chDB's result shapes that are Python objects, not ClickHouse output formats.
_NOT_FORMATS = frozenset({"dataframe", "arrowtable", "datastore"})

_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CODE = re.compile(r"Code: (\d+)\.")
_TRAILING_FORMAT = re.compile(r"\s+FORMAT\s+\w+(\s+SETTINGS\s.*)?$", re.IGNORECASE | re.DOTALL)


class QueryError(RuntimeError):
    """ClickHouse refused the query; the message is ClickHouse's own."""


class StoreNotServing(StoreBusy):
    """No store serves the embedded data path now (down, restarting or starting)."""


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]

    def to_json(self) -> bytes:
        return orjson.dumps(
            {"columns": self.columns, "types": self.types, "rows": self.rows}, default=str
        )


class ReadEngine:
    """Reads on this process's embedded engine, one fresh ``readonly=2`` connection
    per query (chDB runs queries of different connections in parallel)."""

    def __init__(self, path: str, database: str, keeper: Any = None) -> None:
        self._path = path
        self._database = database  # current database unless the client names one
        self._keeper = keeper  # offline: the connection that started the engine
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT_QUERIES)
        self._health = self._open()
        self._health_lock = threading.Lock()
        zone, version = self._text(self._health, "SELECT timezone(), version()", {}).split("\t")
        self.timezone = zone.strip()
        self.version = version.strip()

    @classmethod
    def attach(cls, dsn: str, database: str) -> ReadEngine:
        """Reads on the engine this process already opened for `dsn` (the store's)."""
        return cls(os.path.realpath(data_path_of(dsn)), database)

    @classmethod
    def start(cls, dsn: str, database: str) -> ReadEngine:
        """Start the engine for `dsn` read-only (offline reads), with its startup options."""
        path = os.path.realpath(data_path_of(dsn))
        _, options = split_chdb_dsn(dsn)
        startup = "&".join(["mode=ro", *(f"{k}={v}" if v else k for k, v in options.items())])
        try:
            keeper = chdb.connect(  # type: ignore[no-untyped-call]
                f"{path}?{startup}"
            )
        except RuntimeError as exc:
            raise StoreError(f"cannot open the embedded engine at {path}: {exc}") from exc
        return cls(path, database, keeper)

    def _open(self) -> Any:
        return chdb.connect(f"{self._path}?readonly=2")  # type: ignore[no-untyped-call]

    @staticmethod
    def _text(connection: Any, sql: str, parameters: dict[str, str]) -> str:
        try:
            result = connection.query(sql, "TabSeparatedRaw", params=parameters)
        except Exception as exc:  # chDB raises RuntimeError or ChdbError
            raise _engine_error(exc) from exc
        return bytes(result.bytes()).decode()

    def ready(self) -> None:
        with self._health_lock:
            self._text(self._health, "SELECT 1", {})

    def column_types(self, request: ReadRequest) -> list[str]:
        described = self.answer(
            ReadRequest(
                describe_sql(request.sql),
                "TabSeparatedRaw",
                request.parameters,
                request.settings,
                request.database,
            )
        )
        return [line.split("\t")[1] for line in described.body.decode().splitlines()]

    def answer(self, request: ReadRequest) -> Answer:
        if request.default_format.lower() in _NOT_FORMATS:
            raise EngineError(
                f"Code: 73. DB::Exception: Unknown format {request.default_format}. "
                "(UNKNOWN_FORMAT)",
                73,
            )
        for name in request.settings:
            if not _SETTING_NAME.match(name):
                raise EngineError(
                    f"Code: 115. DB::Exception: Unknown setting {name!r}. (UNKNOWN_SETTING)", 115
                )
        with self._slots:
            connection = self._open()
            try:
                return self._run(connection, request)
            finally:
                connection.close()

    def _run(self, connection: Any, request: ReadRequest) -> Answer:
        try:
            named = read_only.check(
                lambda sql, params: self._text(connection, sql, params),
                request.sql,
                request.parameters,
            )
        except read_only.Refused as exc:
            raise EngineError(str(exc), exc.code) from None
        if request.database:
            self._text(connection, f"USE {_identifier(request.database)}", {})
        else:
            with contextlib.suppress(EngineError):  # not migrated yet: stay in `default`
                self._text(connection, f"USE {_identifier(self._database)}", {})
        if request.settings:
            # SET goes through the settings constraints: readonly=0 is refused.
            pairs = ", ".join(
                f"{name} = {_quote(value)}" for name, value in request.settings.items()
            )
            self._text(connection, f"SET {pairs}", {})
        try:
            result = connection.query(
                request.sql, request.default_format, params=request.parameters
            )
        except Exception as exc:  # chDB raises RuntimeError or ChdbError
            raise _engine_error(exc) from exc
        return Answer(
            bytes(result.bytes()),
            named or request.default_format,
            read_rows=int(result.rows_read()),
            read_bytes=int(result.bytes_read()),
            elapsed_ns=int(result.elapsed() * 1e9),
        )

    def close(self) -> None:
        self._health.close()
        if self._keeper is not None:
            self._keeper.close()


class ServerReader:
    """Server mode: the store's endpoint passes reads on to the ClickHouse server."""

    def __init__(self, settings: Settings) -> None:
        self._dsn = settings.dsn
        self._local = threading.local()
        version, zone = self._client().query("SELECT version(), timezone()").result_rows[0]
        self.version, self.timezone = str(version), str(zone)

    def _client(self) -> Client:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = connect(self._dsn, readonly=True)
            self._local.client = client
        return client

    def ready(self) -> None:
        try:
            self._client().command("SELECT 1")
        except Exception as exc:  # the driver's error types differ by backend
            raise _engine_error(exc) from exc

    def column_types(self, request: ReadRequest) -> list[str]:
        try:
            described = self._client().query(
                describe_sql(request.sql), parameters=request.parameters or None
            )
        except Exception as exc:  # the driver's error types differ by backend
            raise _engine_error(exc) from exc
        return [str(row[1]) for row in described.result_rows]

    def answer(self, request: ReadRequest) -> Answer:
        try:
            body = self._client().raw_query(
                request.sql,
                parameters=request.parameters or None,
                settings=request.settings or None,
                fmt=request.default_format,
            )
        except Exception as exc:  # the driver's error types differ by backend
            raise _engine_error(exc) from exc
        return Answer(body, request.default_format)

    def close(self) -> None:
        client: Client | None = getattr(self._local, "client", None)
        if client is not None:
            client.close()


def describe_sql(sql: str) -> str:
    """``DESCRIBE`` of a SELECT's result: the types, with zones, without running it
    (a trailing ``FORMAT`` clause, as clickhouse-connect appends, is left out)."""
    bare = _TRAILING_FORMAT.sub(r"\1", sql.strip().rstrip(";").rstrip())
    return f"DESCRIBE ({bare})"


def _identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _quote(value: str) -> str:
    """`value` as a ClickHouse string literal (settings coerce it to their type)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _engine_error(exc: Exception) -> EngineError:
    message = _clean(str(exc))
    code = _CODE.search(message)
    return EngineError(message, int(code.group(1)) if code else 1000)


def _clean(message: str) -> str:
    """ClickHouse's own text, without the driver's wrapping."""
    text = message.strip()
    start = text.find("Code: ")
    if start > 0:
        text = text[start:]
    return text.splitlines()[0][:2000] if text else "query failed"


class QueryServer:
    """The store's read-only SQL endpoint, the ClickHouse HTTP interface on loopback
    while the store runs (``url``; published in the owner file)."""

    def __init__(self, settings: Settings) -> None:
        self._reader: ReadEngine | ServerReader = (
            ReadEngine.attach(settings.dsn, settings.clickhouse_database)
            if settings.embedded
            else ServerReader(settings)
        )
        self._server = serve(self._reader, settings.store_query_port)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._reader.close()


def serving_url(settings: Settings) -> str:
    """Where the store of this embedded data path serves SQL; StoreNotServing if none."""
    data_path = data_path_of(settings.dsn)
    owner = read_owner(data_path)
    if owner is None:
        raise StoreNotServing(
            f"store not serving: no store runs for {data_path} (start `tokenshare store`; "
            "offline reads are an explicit choice: `tokenshare sql --offline`)"
        )
    if not owner.query_url:
        raise StoreNotServing(
            f"store not serving yet: {data_path} is held by {owner.describe()}, which "
            "serves no SQL (a store starting, a migration or an offline query); retry in a moment"
        )
    return owner.query_url


_clients = threading.local()  # per thread: a driver client runs one query at a time


def _client_for(url: str) -> Client:
    cache: dict[str, Client] = _clients.__dict__.setdefault("by_url", {})
    client = cache.get(url)
    if client is None:
        try:
            client = connect(url, readonly=True)
        except StoreError as exc:
            raise StoreNotServing(
                f"store not serving: the store's SQL endpoint {url} does not answer ({exc})"
            ) from exc
        cache.clear()  # a store restarted elsewhere: drop clients of its old address
        cache[url] = client
    return client


def _forget(url: str) -> None:
    client = _clients.__dict__.get("by_url", {}).pop(url, None)
    if client is not None:
        client.close()


@contextmanager
def reading_client(settings: Settings, *, offline: bool | None = None) -> Iterator[Client]:
    """A read-only client wherever the store lives (see the module docstring)."""
    offline = settings.query_offline if offline is None else offline
    if not settings.embedded:
        client = connect(settings.dsn, readonly=True)
        try:
            yield client
        finally:
            client.close()
    elif offline:
        with offline_endpoint(settings) as url:
            client = connect(url, readonly=True)
            try:
                yield client
            finally:
                client.close()
    else:
        url = serving_url(settings)
        try:
            yield _client_for(url)
        except OperationalError as exc:  # the store went away mid-query
            _forget(url)
            raise StoreNotServing(f"store not serving: {url} stopped answering ({exc})") from exc


@contextmanager
def offline_endpoint(settings: Settings) -> Iterator[str]:
    """This process as a temporary read-only owner of the embedded data path, serving
    the same interface as a store; raises StoreBusy (naming the holder) while another
    process holds it."""
    lock = OwnerLock(data_path_of(settings.dsn))
    lock.acquire()
    try:
        engine = ReadEngine.start(settings.dsn, settings.clickhouse_database)
        try:
            server = serve(engine, 0)
            try:
                yield f"http://127.0.0.1:{server.server_address[1]}"
            finally:
                server.shutdown()
                server.server_close()
        finally:
            engine.close()
    finally:
        lock.release()


def _query_error(exc: Exception) -> Exception:
    if isinstance(exc, StoreBusy | QueryError):
        return exc
    return QueryError(_clean(str(exc)))


def run_query(
    settings: Settings,
    sql: str,
    parameters: dict[str, Any] | None = None,
    *,
    offline: bool | None = None,
) -> QueryResult:
    """Run read-only `sql` wherever the store lives; rows as Python values."""
    try:
        with reading_client(settings, offline=offline) as client:
            result = client.query(sql, parameters=parameters or {})
    except (StoreBusy, StoreError):
        raise
    except Exception as exc:  # the driver's error types differ by backend
        raise _query_error(exc) from exc
    return QueryResult(
        list(result.column_names),
        [t.name for t in result.column_types],
        [list(r) for r in result.result_rows],
    )


def run_raw(
    settings: Settings,
    sql: str,
    fmt: str,
    parameters: dict[str, Any] | None = None,
    *,
    offline: bool | None = None,
) -> bytes:
    """Run read-only `sql` and return the engine's own output in format `fmt`
    (Parquet, Arrow, CSVWithNames, ...): types as ClickHouse writes them."""
    try:
        with reading_client(settings, offline=offline) as client:
            return client.raw_query(sql, parameters=parameters or None, fmt=fmt)
    except (StoreBusy, StoreError):
        raise
    except Exception as exc:  # the driver's error types differ by backend
        raise _query_error(exc) from exc
