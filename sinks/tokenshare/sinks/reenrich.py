"""Re-enrich stored rows after a catalog change, and rebuild what derives from them.

Stored rows carry the catalog's answer at ingest time (origin, lab, weights,
size ...). When the catalog learns a lab or corrects a model, ``apply``
rewrites every month partition of ``raw_events`` that holds a row whose
enrichment differs from the current catalog, then recomputes the rollups that
materialized views fill from ``raw_events`` for those months, so that shares
of past weeks become what a fresh ingest would give, exactly.

How, per month partition: the corrected rows go to a scratch copy of the table
(same definition, projection included) and ``REPLACE PARTITION`` swaps the
partition in one step; views do not fire on that, so each rollup's month is
recomputed from its own view's SELECT into a scratch copy and swapped the same
way. This writes: it needs the store stopped (the caller holds the embedded
data path, or knows no store writes to the server), or rows stored meanwhile
in a rebuilt month would be lost.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client

from tokenshare.schema.catalog import Catalog, ModelInfo

#: raw_events columns that come from the catalog (the enricher fills them).
CATALOG_COLUMNS = (
    "model_canonical", "author", "lab", "origin_country", "origin_bloc",
    "weights", "size_class", "reasoning", "params_b", "identified",
)  # fmt: skip
#: Tables filled by a materialized view on raw_events whose rows depend on the
#: catalog, with that view; all are partitioned by toYYYYMM(day).
ROLLUPS = (("daily_rollup", "daily_rollup_mv"), ("segment_rollup", "segment_rollup_mv"))

_MAP = "_catalog_apply_map"
_SCRATCH = "_catalog_apply_scratch"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class StoredSlug:
    """One raw slug of one month as stored: its enrichment, rows and tokens."""

    model: str
    month: int  # YYYYMM
    enrichment: tuple[Any, ...]  # CATALOG_COLUMNS, in order
    rows: int
    tokens: int


@dataclass(slots=True)
class Plan:
    """What ``apply`` would change."""

    catalog_version: str
    models: dict[str, ModelInfo] = field(default_factory=dict)  # raw slug -> new enrichment
    months: set[int] = field(default_factory=set)
    rows: int = 0
    tokens: int = 0


@dataclass(frozen=True, slots=True)
class ApplyReport:
    plan: Plan
    rollups: tuple[str, ...]


def enrichment_of(info: ModelInfo) -> tuple[Any, ...]:
    """The catalog columns of a row, as the enricher fills them."""
    return tuple(getattr(info, "model" if c == "model_canonical" else c) for c in CATALOG_COLUMNS)


def _same(stored: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    """Equal enrichments; params_b is compared at Float32 precision (how it is stored)."""
    for a, b in zip(stored, new, strict=True):
        if isinstance(a, float) and isinstance(b, float):
            if not math.isclose(a, b, rel_tol=1e-6):
                return False
        elif a != b:
            return False
    return True


STORED_SQL = (
    "SELECT model, toYYYYMM(day) AS month, "
    + ", ".join(CATALOG_COLUMNS)
    + ", count() AS rows, sum(total_tokens) AS tokens FROM {db}.raw_events "
    "GROUP BY model, month, " + ", ".join(CATALOG_COLUMNS) + " ORDER BY model, month"
)


def stored_slugs(rows: Iterable[Iterable[Any]]) -> list[StoredSlug]:
    """Parse the rows of ``STORED_SQL``."""
    out = []
    for row in rows:
        model, month, *rest = list(row)
        *enrichment, n, tokens = rest
        out.append(StoredSlug(str(model), int(month), tuple(enrichment), int(n), int(tokens)))
    return out


def plan(stored: Iterable[StoredSlug], catalog: Catalog) -> Plan:
    """Which slugs and months the current catalog enriches differently."""
    out = Plan(catalog.version)
    for s in stored:
        info = catalog.lookup(s.model)
        if not _same(s.enrichment, enrichment_of(info)):
            out.models[s.model] = info
            out.months.add(s.month)
            out.rows += s.rows
            out.tokens += s.tokens
    return out


def _identifier(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


def apply(client: Client, database: str, catalog: Catalog) -> ApplyReport:
    """Re-enrich and rebuild; a no-op (empty plan) when everything is current."""
    db = _identifier(database)
    todo = plan(stored_slugs(client.query(STORED_SQL.format(db=db)).result_rows), catalog)
    if not todo.models:
        return ApplyReport(todo, ())
    columns = client.query(
        "SELECT name, type FROM system.columns WHERE database = {db:String} AND "
        "table = 'raw_events' AND default_kind NOT IN ('MATERIALIZED', 'ALIAS') "
        "ORDER BY position",
        parameters={"db": db},
    ).result_rows
    types = {str(n): str(t) for n, t in columns}
    rollups = _rollups(client, db)
    _load_map(client, db, todo, types)
    try:
        select = ", ".join(
            f"if(m.hit, m.{c}, r.{c}) AS {c}" if c in CATALOG_COLUMNS or c == "catalog_version"
            else f"r.{c} AS {c}"
            for c, _ in ((str(n), t) for n, t in columns)
        )  # fmt: skip
        months = sorted(todo.months)
        within = f"toYYYYMM(day) IN ({', '.join(map(str, months))})"
        _swap_months(
            client,
            db,
            "raw_events",
            months,
            f"SELECT {select} FROM {db}.raw_events AS r LEFT JOIN {db}.{_MAP} AS m "
            f"ON r.model = m.model WHERE {within.replace('day', 'r.day', 1)}",
        )
        _rebuild(client, db, rollups, months)
    finally:
        client.command(f"DROP TABLE IF EXISTS {db}.{_MAP}")
    return ApplyReport(todo, tuple(t for t, _ in rollups))


def rebuild_rollups(client: Client, database: str, months: Iterable[int]) -> tuple[str, ...]:
    """Recompute every rollup's `months` (YYYYMM) from the raw rows; the tables rebuilt.

    Also the repair after a crash of the embedded engine: an insert into
    ``raw_events`` and the inserts its views make are separate parts, so a
    process killed between them leaves raw rows whose rollup rows were never
    written, and the writer's guards then skip those rows on replay. Same
    caveat as ``apply``: nothing may write meanwhile.
    """
    db = _identifier(database)
    rollups = _rollups(client, db)
    _rebuild(client, db, rollups, sorted(set(months)))
    return tuple(t for t, _ in rollups)


def _rebuild(client: Client, db: str, rollups: list[tuple[str, str]], months: list[int]) -> None:
    if not months:
        return
    within = f"toYYYYMM(day) IN ({', '.join(map(str, months))})"
    source = f"(SELECT * FROM {db}.raw_events WHERE {within}) AS raw_events"
    for table, view_select in rollups:
        _swap_months(client, db, table, months, _from_month(view_select, db, source))


def _rollups(client: Client, db: str) -> list[tuple[str, str]]:
    """(target table, its view's SELECT) of the rollups this database has."""
    found = {
        str(name): str(select)
        for name, select in client.query(
            "SELECT name, as_select FROM system.tables WHERE database = {db:String}",
            parameters={"db": db},
        ).result_rows
    }
    return [(table, found[view]) for table, view in ROLLUPS if view in found and table in found]


def _from_month(view_select: str, db: str, source: str) -> str:
    """The view's SELECT reading some months of raw_events instead of the whole table."""
    pattern = re.compile(rf"`?{re.escape(db)}`?\.`?raw_events`?")
    if not pattern.search(view_select):
        raise RuntimeError(f"view does not read {db}.raw_events: {view_select[:200]}")
    return pattern.sub(source, view_select, count=1)


def _load_map(client: Client, db: str, todo: Plan, types: dict[str, str]) -> None:
    client.command(f"DROP TABLE IF EXISTS {db}.{_MAP}")
    cols = ", ".join(f"{c} {types[c]}" for c in (*CATALOG_COLUMNS, "catalog_version"))
    client.command(f"CREATE TABLE {db}.{_MAP} (model String, hit UInt8, {cols}) ENGINE = Memory")
    rows = [
        [slug, 1, *enrichment_of(info), todo.catalog_version] for slug, info in todo.models.items()
    ]
    client.insert(
        f"{db}.{_MAP}", rows, column_names=["model", "hit", *CATALOG_COLUMNS, "catalog_version"]
    )


def _swap_months(client: Client, db: str, table: str, months: list[int], select: str) -> None:
    """Fill a scratch copy of ``table`` with ``select`` and swap in those month partitions."""
    scratch = f"{db}.{_SCRATCH}_{table}"
    client.command(f"DROP TABLE IF EXISTS {scratch}")
    client.command(f"CREATE TABLE {scratch} AS {db}.{table}")
    try:
        client.command(
            f"INSERT INTO {scratch} {select}",
            settings={
                "asterisk_include_materialized_columns": 1,
                "join_use_nulls": 0,
                "insert_deduplicate": 0,
            },
        )
        for month in months:
            client.command(
                f"ALTER TABLE {db}.{table} REPLACE PARTITION ID '{month}' FROM {scratch}"
            )
    finally:
        client.command(f"DROP TABLE IF EXISTS {scratch}")
