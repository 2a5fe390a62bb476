"""The cluster form of the schema: single-node migrations rendered for a ClickHouse cluster.

The files in ``schema/clickhouse/`` stay plain single-node SQL, one schema to read
and review. With ``TOKENSHARE_CLICKHOUSE_CLUSTER`` set, ``sinks.clickhouse.migrate``
passes every statement through ``render``, the one place for these rules
(cluster C, database D):

* ``CREATE TABLE D.X (...) ENGINE = E ...`` becomes two tables:
  ``D.X_local`` with the columns and ``Replicated<E>('/clickhouse/tables/{shard}/
  {database}/{table}', '{replica}', <E's arguments>)`` (plain E when not replicated,
  and then ``non_replicated_deduplication_window`` stays as it is, otherwise it
  becomes ``replicated_deduplication_window``), and
  ``D.X AS D.X_local ENGINE = Distributed('C', 'D', 'X_local', <sharding key>)``.
  Every query and insert in tokenshare keeps naming ``D.X``.
* ``CREATE MATERIALIZED VIEW D.V TO D.T AS SELECT ... FROM D.S`` reads ``D.S_local``
  and writes ``D.T_local``: each node aggregates the rows inserted into its own
  shard, so the view sees exactly the rows the shard stored (deduplication
  included), and the Distributed ``D.T`` sums the shards when read.
* ``CREATE VIEW`` is unchanged: views read the Distributed tables.
* ``ALTER TABLE D.X`` column actions apply to ``D.X_local`` and then ``D.X`` (the
  Distributed table must carry the column too; drops go the other way round);
  ``MODIFY SETTING`` applies to ``D.X_local`` only, with the replicated setting name.
* With ``on_cluster`` every statement carries ``ON CLUSTER 'C'`` and runs once,
  through distributed DDL; without it each statement applies to the connected
  node only, and the operator runs ``tokenshare migrate`` against every node.

Sharding keys (``SHARDING_KEYS``) are deterministic, so a retried insert splits
into the same per-shard blocks and ``insert_deduplication_token`` drops it on every
shard, and rows that must meet (an event id's repeats, a ReplacingMergeTree key's
versions) land on one shard.

Anything else (a new kind of statement, a table with no sharding key) raises
``ClusterRenderError`` naming the statement: ``tests/test_cluster_ddl.py`` renders
every shipped statement, so a migration the rules cannot handle fails there,
never as wrong DDL on a cluster.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from tokenshare.settings import Settings

#: Where Replicated* local tables keep their replica metadata in Keeper (ClickHouse's
#: conventional layout: one path per shard, database and table).
REPLICA_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
REPLICA_NAME = "{replica}"

#: Per table: the Distributed sharding key. Rows that must meet on one shard decide it.
SHARDING_KEYS = {
    # An event id's repeats on one shard: the writer's event-id guard finds them
    # there through the by_event_id projection, and a retried insert splits alike.
    "raw_events": "cityHash64(event_id)",
    # ReplacingMergeTree: every version of a key on one shard, where FINAL merges them.
    "alerts": "cityHash64(alert_id)",
    "share_snapshots": "cityHash64(window_kind, window_start, dimension, measure, final, value)",
    "late_events": "cityHash64(day)",
    # Filled only by materialized views on each shard's own raw_events_local, never
    # through the Distributed table; the key only has to be deterministic.
    "daily_rollup": "cityHash64(dimension, value)",
    "segment_rollup": "cityHash64(dimension, value)",
    "partition_watermarks": "cityHash64(src_topic, src_partition)",
}

#: Settings pinned on a writing session in cluster mode: an insert into a Distributed
#: table returns once every shard has stored its rows (not when they are queued for a
#: background send), so a Kafka commit after the insert means the rows are stored,
#: and a failed shard fails the insert, which the writer retries with the same token.
#: (Servers from before its rename know it as insert_distributed_sync, now its alias.)
SESSION_SETTINGS: dict[str, Any] = {"distributed_foreground_insert": 1}

_DEDUP_WINDOW = re.compile(r"\bnon_replicated_deduplication_window\b")
_NAME = r"(?P<if>IF\s+(?:NOT\s+)?EXISTS\s+)?(?P<db>\w+)\.(?P<name>\w+)"
_CREATE_TABLE = re.compile(rf"^CREATE\s+TABLE\s+{_NAME}\s*\(", re.I)
_CREATE_MV = re.compile(
    rf"^CREATE\s+MATERIALIZED\s+VIEW\s+{_NAME}\s+TO\s+(?P<to_db>\w+)\.(?P<to>\w+)\s+AS\s",
    re.I,
)
_CREATE_VIEW = re.compile(rf"^CREATE\s+VIEW\s+{_NAME}\s+AS\s", re.I)
_ALTER_TABLE = re.compile(rf"^ALTER\s+TABLE\s+{_NAME}\s+", re.I)
_DROP_VIEW = re.compile(rf"^DROP\s+VIEW\s+{_NAME}\s*$", re.I)
_ENGINE = re.compile(r"\bENGINE\s*=\s*(?P<engine>\w+)", re.I)
_COLUMN_ACTION = re.compile(r"^(?P<verb>ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b", re.I)
_SETTING_ACTION = re.compile(r"^(?:MODIFY|RESET)\s+SETTING\b", re.I)


class ClusterRenderError(ValueError):
    """A migration statement has no cluster rule; the message says which and what to do."""


@dataclass(frozen=True, slots=True)
class Cluster:
    """Cluster mode: the schema as local tables on every node plus Distributed tables."""

    name: str
    #: Local tables use Replicated* engines (Keeper, and the shard/replica macros).
    replicated: bool = True
    #: DDL carries ON CLUSTER and runs once; False: on the connected node only.
    on_cluster: bool = True

    @classmethod
    def of(cls, settings: Settings) -> Cluster | None:
        """The cluster the settings name, or None for a single node."""
        if not settings.clickhouse_cluster:
            return None
        return cls(
            settings.clickhouse_cluster,
            replicated=settings.clickhouse_replicated,
            on_cluster=settings.clickhouse_on_cluster,
        )

    @property
    def on(self) -> str:
        """The ON CLUSTER clause, with its leading space, or nothing."""
        return f" ON CLUSTER '{self.name}'" if self.on_cluster else ""

    @property
    def needs_macros(self) -> bool:
        """Replicated tables name their replica by macros; so does the cluster-wide
        bookkeeping table that ON CLUSTER mode keeps (see ``bookkeeping_table``)."""
        return self.replicated or self.on_cluster

    def describe(self) -> str:
        engines = "Replicated* engines" if self.replicated else "plain engines (not replicated)"
        ddl = "DDL ON CLUSTER" if self.on_cluster else "DDL per node (`tokenshare migrate` on each)"
        return f"cluster '{self.name}': local tables with {engines} under Distributed tables, {ddl}"


def local_name(table: str) -> str:
    return f"{table}_local"


def create_database(database: str, cluster: Cluster | None) -> str:
    on = cluster.on if cluster else ""
    return f"CREATE DATABASE IF NOT EXISTS {database}{on}"


def bookkeeping_table(database: str, cluster: Cluster | None) -> str:
    """The table that records which migrations were applied.

    Its scope must match the DDL's. Per-node DDL (single node, or a cluster without
    ON CLUSTER): each node records what was applied to it, in a plain local table,
    so migrating node 2 is not skipped because node 1 is done. ON CLUSTER DDL is
    applied to every node at once, so the record must be cluster-wide: one
    ReplicatedMergeTree table whose replicas are every node of every shard (its
    Keeper path has no {shard}), so a store connected to any node sees the same
    list and never re-runs a migration (007 drops and re-creates a view).
    Distributed DDL needs Keeper anyway, so this holds for non-replicated clusters too.
    """
    columns = "(name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))"
    head = f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations"
    if cluster is None or not cluster.on_cluster:
        return f"{head} {columns} ENGINE = MergeTree ORDER BY name"
    path = f"/clickhouse/tables/cluster-wide/{cluster.name}/{{database}}/{{table}}"
    engine = f"ReplicatedMergeTree('{path}', '{{shard}}-{{replica}}')"
    return f"{head}{cluster.on} {columns} ENGINE = {engine} ORDER BY name"


def tables_created(statements: Iterable[str], database: str) -> frozenset[str]:
    """Names of the tables the single-node statements create in `database`."""
    found = set()
    for statement in statements:
        match = _CREATE_TABLE.match(statement)
        if match and match["db"] == database:
            found.add(match["name"])
    return frozenset(found)


def render(
    statement: str, database: str, cluster: Cluster | None, tables: Collection[str]
) -> list[str]:
    """The statements that replace one single-node migration `statement`.

    `tables` are the tables the shipped migrations create (``tables_created``): only
    they have a local and a Distributed form. Single node: the statement unchanged.
    Raises ClusterRenderError for a statement no rule covers."""
    if cluster is None:
        return [statement]
    if re.search(r"\bON\s+CLUSTER\b", statement, re.I) or re.search(
        r"\bReplicated\w*MergeTree\b|\bDistributed\s*\(", statement
    ):
        _fail(statement, "migrations are single-node SQL; the cluster form is made here")
    rules: list[tuple[re.Pattern[str], Callable[..., list[str]]]] = [
        (_CREATE_TABLE, _table),
        (_CREATE_MV, _materialized_view),
        (_CREATE_VIEW, _on_cluster_only),
        (_ALTER_TABLE, _alter),
        (_DROP_VIEW, _on_cluster_only),
    ]
    for pattern, rule in rules:
        match = pattern.match(statement)
        if match:
            if match["db"] != database:
                _fail(statement, f"name objects as {database}.<name> (write {{db}}.<name>)")
            return rule(statement, match, database, cluster, tables)
    _fail(statement, "no cluster rule for this kind of statement")


def _table(
    statement: str, m: re.Match[str], db: str, cluster: Cluster, tables: Collection[str]
) -> list[str]:
    name = m["name"]
    key = SHARDING_KEYS.get(name)
    if key is None:
        _fail(
            statement,
            f"table {name} has no sharding key: add one to SHARDING_KEYS in sinks/cluster.py "
            "(deterministic, and keeping rows that must meet on one shard)",
        )
    _engine_span(statement)  # checked on the statement as written, for the error message
    local = _rename(statement, m, local_name(name), cluster)
    if cluster.replicated:
        local = _replicated_engine(local)
    distributed = (
        f"CREATE TABLE {m['if'] or ''}{db}.{name}{cluster.on} AS {db}.{local_name(name)} "
        f"ENGINE = Distributed('{cluster.name}', '{db}', '{local_name(name)}', {key})"
    )
    return [local, distributed]


def _materialized_view(
    statement: str, m: re.Match[str], db: str, cluster: Cluster, tables: Collection[str]
) -> list[str]:
    target = m["to"]
    head, body = statement[: m.end()], statement[m.end() :]
    sources = set(re.findall(rf"\b{re.escape(db)}\.(\w+)\b", body))
    if m["to_db"] != db or target not in tables:
        _fail(statement, f"a materialized view must write a table of the schema, not {target}")
    if len(sources) != 1 or not sources <= set(tables):
        _fail(
            statement,
            "a materialized view must read exactly one table of the schema (this one reads "
            f"{sorted(sources)}): decide whether each source is read in its local or its "
            "Distributed form, and add that rule here",
        )
    (source,) = sources
    # The target first: it sits after the view's name, so the name's offsets still hold.
    head = head[: m.start("to")] + local_name(target) + head[m.end("to") :]
    head = _rename(head, m, m["name"], cluster)
    body = re.sub(rf"\b{re.escape(db)}\.{source}\b", f"{db}.{local_name(source)}", body)
    return [head + body]


def _on_cluster_only(
    statement: str, m: re.Match[str], db: str, cluster: Cluster, tables: Collection[str]
) -> list[str]:
    return [_rename(statement, m, m["name"], cluster)]


def _alter(
    statement: str, m: re.Match[str], db: str, cluster: Cluster, tables: Collection[str]
) -> list[str]:
    name = m["name"]
    if name not in tables:
        _fail(statement, f"ALTER of {name}, which is not a table of the schema")
    actions = _split_top_level(statement[m.end() :])
    columns = [_COLUMN_ACTION.match(a) for a in actions]
    if all(columns):
        local = _rename(statement, m, local_name(name), cluster)
        distributed = _rename(statement, m, name, cluster)
        # The Distributed table must never name a column its local tables lack.
        drops = any(c and c["verb"].upper() == "DROP" for c in columns)
        return [distributed, local] if drops else [local, distributed]
    if all(_SETTING_ACTION.match(a) for a in actions):
        local = _rename(statement, m, local_name(name), cluster)
        if cluster.replicated:
            local = _DEDUP_WINDOW.sub("replicated_deduplication_window", local)
        return [local]
    _fail(
        statement,
        "ALTER TABLE rules cover column actions (ADD/DROP/MODIFY/RENAME/COMMENT COLUMN) "
        "and MODIFY/RESET SETTING, one kind per statement",
    )


def _rename(statement: str, m: re.Match[str], new_name: str, cluster: Cluster) -> str:
    """The statement with its object renamed and ON CLUSTER after the name."""
    return statement[: m.start("name")] + new_name + cluster.on + statement[m.end("name") :]


def _engine_span(statement: str) -> tuple[int, int, str, str]:
    """(start, end, engine, arguments) of the single ``ENGINE = E[(args)]``."""
    found = list(_ENGINE.finditer(statement))
    if len(found) != 1:
        _fail(statement, f"expected one ENGINE clause, found {len(found)}")
    m = found[0]
    engine, end, args = m["engine"], m.end(), ""
    if not re.fullmatch(r"\w*MergeTree", engine):
        _fail(statement, f"engine {engine}: only the MergeTree family has a cluster rule")
    rest = statement[end:]
    if rest.lstrip().startswith("("):
        start = end + len(rest) - len(rest.lstrip())
        close = _matching_paren(statement, start)
        args, end = statement[start + 1 : close].strip(), close + 1
    return m.start(), end, engine, args


def _replicated_engine(statement: str) -> str:
    start, end, engine, args = _engine_span(statement)
    params = ", ".join(p for p in (f"'{REPLICA_PATH}'", f"'{REPLICA_NAME}'", args) if p)
    replaced = f"{statement[:start]}ENGINE = Replicated{engine}({params}){statement[end:]}"
    return _DEDUP_WINDOW.sub("replicated_deduplication_window", replaced)


def _scan(text: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """(position, character, depth after it) of characters outside quotes: the
    depth counts open parentheses, so depth 0 is the statement's top level."""
    depth, quote = 0, ""
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            quote = "" if ch == quote and text[i - 1] != "\\" else quote
            continue
        if ch in "'`\"":
            quote = ch
            continue
        depth += 1 if ch == "(" else -1 if ch == ")" else 0
        yield i, ch, depth


def _matching_paren(text: str, start: int) -> int:
    for i, ch, depth in _scan(text, start):
        if ch == ")" and depth == 0:
            return i
    _fail(text, "unbalanced parentheses")


def _split_top_level(text: str) -> list[str]:
    """Comma-separated parts outside parentheses and quotes (ALTER's action list)."""
    cuts = [i for i, ch, depth in _scan(text) if ch == "," and depth == 0]
    bounds = zip([-1, *cuts], [*cuts, len(text)], strict=True)
    return [part for a, b in bounds if (part := text[a + 1 : b].strip())]


def _fail(statement: str, why: str) -> NoReturn:
    head = " ".join(statement.split())[:160]
    raise ClusterRenderError(
        f"cannot render for a cluster: {why}. Statement: {head} ... "
        "(the rules live in sinks/cluster.py)"
    )


# --- checks shared by `migrate` (refuses to run) and `doctor` (reports) -------------------

#: Runs a read-only query with {name:Type} parameters and returns its rows.
Query = Callable[[str, dict[str, Any]], Sequence[Sequence[Any]]]


@dataclass(frozen=True, slots=True)
class Problem:
    """Something that keeps the schema from fitting the configured mode."""

    detail: str
    fix: str

    def __str__(self) -> str:
        return f"{self.detail}: {self.fix}"


@dataclass(frozen=True, slots=True)
class ClusterView:
    """The cluster as the connected node sees it (``system.clusters``, ``system.macros``)."""

    shards: int
    replicas: int
    local_replicas: int
    missing_macros: tuple[str, ...]

    def problems(self, cluster: Cluster) -> list[Problem]:
        """What stops the schema from being created on `cluster`, each with what to do."""
        if self.shards == 0:
            return [
                Problem(
                    f"cluster '{cluster.name}' is not defined on this ClickHouse server",
                    "define it under <remote_servers> in every node's config, or fix "
                    "TOKENSHARE_CLICKHOUSE_CLUSTER (empty: single node)",
                )
            ]
        out = []
        if self.missing_macros:
            out.append(
                Problem(
                    f"macros {', '.join(self.missing_macros)} are not defined on this node",
                    "set <macros><shard>…</shard><replica>…</replica></macros> in every "
                    "node's config (Replicated tables and the ON CLUSTER bookkeeping use them)",
                )
            )
        if not cluster.on_cluster and self.local_replicas == 0:
            out.append(
                Problem(
                    f"this node is not a replica of cluster '{cluster.name}' (no is_local "
                    "entry in system.clusters)",
                    "with TOKENSHARE_CLICKHOUSE_ON_CLUSTER=false the DSN must point at a "
                    "node of the cluster",
                )
            )
        return out


def inspect(query: Query, cluster: Cluster) -> ClusterView:
    rows = query(
        "SELECT count(), uniqExact(shard_num), countIf(is_local) FROM system.clusters "
        "WHERE cluster = {name:String}",
        {"name": cluster.name},
    )
    replicas, shards, local = (int(v) for v in rows[0])
    missing: tuple[str, ...] = ()
    if cluster.needs_macros:
        have = {str(r[0]) for r in query("SELECT macro FROM system.macros", {})}
        missing = tuple(m for m in ("shard", "replica") if m not in have)
    return ClusterView(shards, replicas, local, missing)


def shape_problems(
    query: Query, database: str, cluster: Cluster | None, tables: Collection[str]
) -> list[Problem]:
    """Tables of `database` whose engine does not fit the mode (existing tables are
    never converted: a schema made for a single node stays single-node)."""
    rows = query(
        "SELECT name, engine FROM system.tables WHERE database = {db:String} "
        "AND name IN {names:Array(String)}",
        {"db": database, "names": sorted(tables)},
    )
    wrong = sorted(
        f"{name} ({engine})"
        for name, engine in rows
        if (engine == "Distributed") != (cluster is not None)
    )
    if not wrong:
        return []
    want = "Distributed (cluster mode)" if cluster else "local engines (single node)"
    return [
        Problem(
            f"database {database} does not fit the configured mode: {', '.join(wrong)} "
            f"should be {want}",
            "tables are never converted: use another TOKENSHARE_CLICKHOUSE_DATABASE for the "
            "new mode (and copy the data with INSERT ... SELECT), or set "
            "TOKENSHARE_CLICKHOUSE_CLUSTER back to what the database was created with",
        )
    ]
