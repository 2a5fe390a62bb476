"""The embedded ClickHouse engine in tests: a migrated database reused, emptied between uses."""

from __future__ import annotations

from clickhouse_connect.driver.client import Client


def empty(client: Client, database: str) -> None:
    """Remove every row from the database's tables, the migrations ledger aside; the
    deduplication log of each table goes with its rows, as in a new database."""
    tables = client.query(
        "SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree'"
        " AND name != 'schema_migrations'",
        parameters={"db": database},
    ).result_rows
    for (table,) in tables:
        client.command(f"TRUNCATE TABLE {database}.{table}")
