"""ClickHouse connections and schema migrations, embedded or server by DSN.

``chdb:///abs/path`` runs the engine in this process (one process per data
path: see ``sinks.owner``); its query parameters are the engine's startup
options, e.g. ``chdb:///abs/path?config-file=/etc/tokenshare/chdb.xml``.
``http(s)://user:password@host:port`` talks to a server. Nothing else in
tokenshare looks at the DSN's scheme.

In cluster mode (``sinks.cluster``) the migrations are rendered for the cluster
and writing sessions pin the cluster's insert settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from tokenshare.sinks.cluster import (
    SESSION_SETTINGS,
    Cluster,
    Query,
    bookkeeping_table,
    create_database,
    inspect,
    render,
    shape_problems,
    tables_created,
)

#: Settings pinned on every insert: synchronous (recent ClickHouse defaults
#: async_insert to 1, which skips deduplication), deduplicated by token, and
#: deduplicated in the materialized views too (otherwise a retried insert is
#: dropped from raw_events but counted again in the rollups).
INSERT_SETTINGS: dict[str, Any] = {
    "async_insert": 0,
    "insert_deduplicate": 1,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
}


class StoreError(RuntimeError):
    """ClickHouse refused or could not be reached; the message says what to do."""


#: How ClickHouse and the OS say a write found no room: NOT_ENOUGH_SPACE (code 243),
#: and ENOSPC from a file write.
_DISK_FULL = ("NOT_ENOUGH_SPACE", "No space left on device", "Cannot reserve")


def disk_full(exc: BaseException) -> bool:
    """Whether a failed write failed for want of disk space (freeing space fixes it)."""
    chain: BaseException | None = exc
    while chain is not None:
        if any(marker in str(chain) for marker in _DISK_FULL):
            return True
        chain = chain.__cause__ or chain.__context__
    return False


def connect(dsn: str, *, readonly: bool = False, cluster: Cluster | None = None) -> Client:
    """A client for `dsn`. `readonly` clients refuse every write, by the engine's own rule.

    A writing client in cluster mode pins ``sinks.cluster.SESSION_SETTINGS`` on its
    session, so every insert (raw events, alerts, snapshots) is synchronous through
    the Distributed tables without the writers knowing about clusters."""
    options: dict[str, Any] = {}
    if cluster is not None and not readonly:
        options["settings"] = dict(SESSION_SETTINGS)
    if dsn.startswith("chdb://"):
        dsn, engine_options = split_chdb_dsn(dsn)
        if engine_options:
            options["chdb_options"] = engine_options
    try:
        client = clickhouse_connect.get_client(dsn=dsn, **options)
        if readonly and not _already_readonly(client):
            # readonly=1 also forbids changing settings, so a query cannot undo it.
            # (A server's analyst profile may pin readonly already: then nothing to do.)
            client.command("SELECT 1", settings={"readonly": 1})
    except Exception as exc:  # the driver raises many types; all mean "cannot connect"
        raise StoreError(
            f"cannot open ClickHouse at {redact(dsn)}: {exc}. "
            "Embedded: is another process holding this data path (a running "
            "`tokenshare store`)? Server: check host, port and credentials."
        ) from exc
    return client


def split_chdb_dsn(dsn: str) -> tuple[str, dict[str, str]]:
    """(``chdb://path``, engine options) of a chdb DSN. The driver would drop query
    parameters it does not know (``config-file`` is not a keyword); chDB takes them
    as clickhouse-local startup arguments, e.g. ``config-file`` for a config with
    <remote_servers> and <macros>."""
    base, _, query = dsn.partition("?")
    return base, dict(parse_qsl(query, keep_blank_values=True))


def _already_readonly(client: Client) -> bool:
    rows = client.query("SELECT value FROM system.settings WHERE name = 'readonly'").result_rows
    return bool(rows) and str(rows[0][0]) not in ("0", "")


def redact(dsn: str) -> str:
    """The DSN without its password, for logs and errors."""
    if "@" not in dsn or "://" not in dsn:
        return dsn
    scheme, rest = dsn.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def migration_files() -> list[tuple[str, str]]:
    """(name, SQL) of every shipped migration, in order."""
    folder = resources.files("tokenshare.schema").joinpath("clickhouse")
    files = sorted((f.name, f.read_text()) for f in folder.iterdir() if f.name.endswith(".sql"))
    return files


def migrate(client: Client, database: str, cluster: Cluster | None = None) -> list[str]:
    """Create the database and apply migrations not yet applied; returns their names.

    `cluster`: render them for that cluster (``sinks.cluster``). Every statement
    is rendered before anything runs, so one without a cluster rule stops the
    migration (ClusterRenderError) before it changes anything. Raises StoreError when the
    cluster is not usable from this node, or when the database was created in the
    other mode."""
    schema = schema_statements(database)
    tables = tables_created((st for _, sts in schema for st in sts), database)
    rendered = [
        (name, [out for st in statements for out in render(st, database, cluster, tables)])
        for name, statements in schema
    ]
    query = _query_rows(client)
    if cluster is not None:
        problems = inspect(query, cluster).problems(cluster)
        if problems:
            raise StoreError("; ".join(map(str, problems)))
    _ddl(client, create_database(database, cluster), "creating the database")
    _ddl(client, bookkeeping_table(database, cluster), "creating the migrations table")
    done = {
        r[0] for r in client.query(f"SELECT name FROM {database}.schema_migrations").result_rows
    }
    pending = [(name, statements) for name, statements in rendered if name not in done]
    for name, statements in pending:
        for statement in statements:
            _ddl(client, statement, f"migration {name}")
        client.insert(
            f"{database}.schema_migrations",
            [[name]],
            column_names=["name"],
            settings=INSERT_SETTINGS,
        )
    problems = shape_problems(query, database, cluster, tables)
    if problems:
        raise StoreError("; ".join(map(str, problems)))
    return [name for name, _ in pending]


def _ddl(client: Client, statement: str, what: str) -> None:
    try:
        client.command(statement)
    except Exception as exc:  # the driver's error types differ by backend
        head = " ".join(statement.split())[:120]
        raise StoreError(
            f"{what} failed at `{head} ...`: {str(exc).strip()[:500]}. Fix the cause and "
            "run it again: applied migrations are recorded and every statement is "
            "idempotent (IF [NOT] EXISTS)"
        ) from exc


def schema_statements(database: str) -> list[tuple[str, list[str]]]:
    """(migration name, its single-node statements for `database`), in order."""
    return [(name, _statements(sql.replace("{db}", database))) for name, sql in migration_files()]


def shipped_tables(database: str) -> frozenset[str]:
    """The tables the migrations create (each a local + Distributed pair on a cluster)."""
    return tables_created((st for _, sts in schema_statements(database) for st in sts), database)


def _query_rows(client: Client) -> Query:
    def run(sql: str, parameters: dict[str, Any]) -> Sequence[Sequence[Any]]:
        rows: Sequence[Sequence[Any]] = client.query(sql, parameters=parameters).result_rows
        return rows

    return run


def _statements(sql: str) -> list[str]:
    """Split a migration file on `;` at line ends, dropping comment-only chunks."""
    out = []
    for chunk in sql.split(";\n"):
        body = (
            "\n".join(line for line in chunk.splitlines() if not line.strip().startswith("--"))
            .strip()
            .rstrip(";")
        )
        if body:
            out.append(body)
    return out
