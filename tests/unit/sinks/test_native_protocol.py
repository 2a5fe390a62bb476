"""Native at a client protocol version (sinks.native): what clickhouse-connect reads at
its protocol version is what it reads at protocol 0, for every column type of the
migrated schema, and DateTime('Zone') keeps its zone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from clickhouse_connect import common
from clickhouse_connect.driver.client import Client

from tokenshare.sinks import native
from tokenshare.sinks.ch_http import serve
from tokenshare.sinks.query import ReadEngine


@pytest.fixture
def clients(ch_client: Client, chdb_path: Path, migrated: str) -> Iterator[tuple[Client, Client]]:
    """(at the driver's protocol version, at protocol 0), both through the interface."""
    engine = ReadEngine(str(chdb_path), migrated)
    server = serve(engine, 0)
    port = server.server_address[1]
    versioned = clickhouse_connect.get_client(host="127.0.0.1", port=port)
    common.set_setting("use_protocol_version", False)
    try:
        plain = clickhouse_connect.get_client(host="127.0.0.1", port=port)
    finally:
        common.set_setting("use_protocol_version", True)
    assert versioned.protocol_version and not plain.protocol_version
    yield versioned, plain
    versioned.close()
    plain.close()
    server.shutdown()
    server.server_close()


def _same(value: Any) -> Any:
    """Instants compared as instants (protocol 0 names DateTime without its zone, and
    clickhouse-connect then reads it as naive UTC: the engine's zone here)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, list | tuple):
        return [_same(v) for v in value]
    if isinstance(value, dict):
        return {k: _same(v) for k, v in value.items()}
    return value


def test_every_schema_type_reads_the_same_at_a_protocol_version(
    ch_client: Client, migrated: str, clients: tuple[Client, Client]
) -> None:
    versioned, plain = clients
    tables = ch_client.query(
        "SELECT table, groupArray(concat(name, ' ', type)) FROM system.columns "
        "WHERE database = {db:String} AND default_kind NOT IN ('ALIAS') GROUP BY table",
        parameters={"db": migrated},
    ).result_rows
    assert len(tables) > 5
    types = set()
    for table, columns in tables:
        structure = ", ".join(columns).replace("\\", "\\\\").replace("'", "\\'")
        types |= {c.split(" ", 1)[1] for c in columns}
        sql = (
            f"SELECT * FROM generateRandom('{structure}', 7, 12, 3) LIMIT 25 "
            "SETTINGS allow_suspicious_low_cardinality_types = 1"
        )
        got = versioned.query(sql)
        want = plain.query(sql)
        assert [t.name for t in got.column_types] == [c.split(" ", 1)[1] for c in columns], table
        assert len(got.result_rows) == 25
        for a, b in zip(got.result_rows, want.result_rows, strict=True):
            assert _same(list(a)) == _same(list(b)), table
    # the schema has the containers the walk must get right
    assert any(t.startswith("LowCardinality(") for t in types)
    assert any(t.startswith("Nullable(") for t in types)
    assert any(t.startswith("SimpleAggregateFunction(") for t in types)


def test_zones_and_containers(clients: tuple[Client, Client]) -> None:
    versioned, plain = clients
    sql = (
        "SELECT toDateTime(1700000000, 'Asia/Shanghai') AS t, [t] AS ts, toNullable(t) AS nt, "
        "map('k', [toLowCardinality('v')]) AS m, tuple(1, 'x') AS tu, NULL AS n, "
        "toFixedString('ab', 2) AS f, toDecimal128(-3.5, 4) AS d, number "
        "FROM numbers(3)"
    )
    got = versioned.query(sql)
    assert got.column_types[0].name == "DateTime('Asia/Shanghai')"
    assert all(str(r[0].tzinfo) == "Asia/Shanghai" for r in got.result_rows)
    assert plain.query(sql).column_types[0].name == "DateTime"  # protocol 0: as a server does
    assert _same(list(got.result_rows)) == _same(list(plain.query(sql).result_rows))


def test_version_dependent_types_are_refused() -> None:
    t = native.parse_type("Tuple(a Array(LowCardinality(Nullable(String))), b Variant(UInt8))")
    assert [a.name for a in t.args] == ["Array", "Variant"]
    body = b"\x01\x01\x01v\x13Variant(String, UInt8)\x00\x00"
    with pytest.raises(native.NativeError, match="Variant"):
        native.upgrade(body, native.MAX_REVISION)
    assert native.upgrade(body, 0) == body  # protocol 0: passed through as written
