"""`tokenshare doctor`: check broker, topics, ClickHouse, processes and config,
and say what to fix."""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from tokenshare.cli.context import Context

if TYPE_CHECKING:
    from tokenshare.settings import Settings

OK, WARN, FAIL = "ok", "warn", "fail"
MARK = {OK: "[green]✓[/]", WARN: "[yellow]![/]", FAIL: "[red]✗[/]"}


@dataclass
class Finding:
    check: str
    status: str
    detail: str
    fix: str = ""


def _config(s: Settings) -> list[Finding]:
    from tokenshare.schema.catalog import Catalog
    from tokenshare.sinks.clickhouse import redact
    from tokenshare.streams.shares.config import load_rules

    out = [
        Finding(
            "settings",
            OK,
            f"broker {s.kafka_bootstrap}, topics {s.topic_prefix}.*, ClickHouse {redact(s.dsn)}",
        )
    ]
    try:
        rules = load_rules(s.rules_file)
        out.append(
            Finding(
                "rules",
                OK,
                f"{s.rules_file or 'shipped defaults'}: lateness "
                f"{rules.lateness_hours} h, {len(rules.all_rules())} rules",
            )
        )
    except ValueError as exc:
        out.append(Finding("rules", FAIL, str(exc).splitlines()[0], "fix the rules file"))
    catalog = Catalog.load()
    out.append(Finding("model catalog", OK, f"version {catalog.version}, {len(catalog)} models"))
    return out


def _kafka(s: Settings) -> list[Finding]:
    from kafka.errors import KafkaError

    from tokenshare import kafka_clients
    from tokenshare.streams.topics import group_lag, topic_specs

    try:
        admin = kafka_clients.admin(s, request_timeout_ms=5000)
    except KafkaError as exc:
        return [
            Finding(
                "broker",
                FAIL,
                f"{s.kafka_bootstrap}: {exc}",
                "start it: `tokenshare stack up`, or set TOKENSHARE_KAFKA_BOOTSTRAP",
            )
        ]
    try:
        out = [Finding("broker", OK, f"{s.kafka_bootstrap} answers")]
        names = set(admin.list_topics())
        probe = kafka_clients.consumer(s)
        try:
            meta = {t: len(probe.partitions_for_topic(t) or ()) for t in names}
        finally:
            probe.close()
        for spec in topic_specs(s):
            have = meta.get(spec.name)
            if have is None:
                out.append(
                    Finding(
                        f"topic {spec.name}",
                        FAIL,
                        "missing",
                        "create the topics: `tokenshare topics`",
                    )
                )
            elif have < spec.num_partitions:
                out.append(
                    Finding(
                        f"topic {spec.name}",
                        WARN,
                        f"{have} partitions, settings say {spec.num_partitions}",
                        "add partitions or change TOKENSHARE_PARTITIONS",
                    )
                )
            else:
                out.append(Finding(f"topic {spec.name}", OK, f"{have} partitions"))
        for group, topic in ((s.ingest_group, s.events_topic), (s.store_group, s.rows_topic)):
            if topic in meta:
                lag = group_lag(s, group, topic)
                status = OK if lag == 0 else WARN
                out.append(
                    Finding(
                        f"lag {group}",
                        status,
                        "no commits yet" if lag is None else f"{lag} messages behind",
                        "" if status == OK else "is the process running?",
                    )
                )
        return out
    finally:
        admin.close()


def _clickhouse(s: Settings) -> list[Finding]:
    from tokenshare.sinks.clickhouse import migration_files
    from tokenshare.sinks.owner import data_path_of, read_owner
    from tokenshare.sinks.query import run_query

    out = []
    if s.embedded:
        owner = read_owner(data_path_of(s.dsn))
        out.append(
            Finding(
                "store",
                OK if owner else WARN,
                f"pid {owner.pid} serving {owner.query_url}"
                if owner
                else "no store running (queries open the engine directly)",
                "" if owner else "start it: `tokenshare store`",
            )
        )
    try:
        applied = {
            r[0]
            for r in run_query(
                s, f"SELECT name FROM {s.clickhouse_database}.schema_migrations"
            ).rows
        }
    except Exception as exc:  # any driver or transport error means the same to the operator
        return [
            *out,
            Finding(
                "ClickHouse",
                FAIL,
                str(exc).splitlines()[0][:200],
                "start `tokenshare store` once: it creates the schema",
            ),
        ]
    missing = [name for name, _ in migration_files() if name not in applied]
    out.append(
        Finding(
            "schema",
            WARN if missing else OK,
            f"missing migrations {missing}" if missing else f"{len(applied)} migrations applied",
            "restart `tokenshare store` or run `tokenshare migrate`" if missing else "",
        )
    )
    return [*out, *_cluster(s)]


def _cluster(s: Settings) -> list[Finding]:
    """The ClickHouse mode, and whether the server and the tables fit it."""
    from tokenshare.sinks.clickhouse import shipped_tables
    from tokenshare.sinks.cluster import Cluster, Problem, inspect, shape_problems
    from tokenshare.sinks.query import run_query

    def query(sql: str, parameters: dict[str, Any]) -> list[list[Any]]:
        return run_query(s, sql, parameters).rows

    cluster = Cluster.of(s)
    db = s.clickhouse_database
    try:
        view = inspect(query, cluster) if cluster else None
        problems: list[Problem] = view.problems(cluster) if cluster and view else []
        problems += shape_problems(query, db, cluster, shipped_tables(db))
    except Exception as exc:  # any driver or transport error means the same to the operator
        return [
            Finding(
                "ClickHouse mode",
                FAIL,
                str(exc).splitlines()[0][:200],
                "grant SELECT on system.clusters, system.macros and system.tables",
            )
        ]
    if cluster is None or view is None:
        mode = "single node (TOKENSHARE_CLICKHOUSE_CLUSTER is empty)"
    else:
        mode = f"{cluster.describe()}; {view.shards} shard(s), {view.replicas} replica(s) in all"
    return [
        Finding("ClickHouse mode", FAIL if problems else OK, mode),
        *(Finding("ClickHouse cluster", FAIL, p.detail, p.fix) for p in problems),
    ]


def _worker(s: Settings) -> list[Finding]:
    url = f"http://127.0.0.1:{s.worker_web_port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=3) as reply:
            return [Finding("worker", OK, f"ready at {url} ({reply.status})")]
    except OSError as exc:
        return [
            Finding(
                "worker",
                WARN,
                f"no worker answers at {url}: {exc}",
                "start one: `tokenshare worker`",
            )
        ]


CHECKS: list[Callable[[Settings], list[Finding]]] = [_config, _kafka, _clickhouse, _worker]


@click.command()
@click.pass_obj
def doctor(ctx: Context) -> None:
    """Check config, broker, topics, consumer lag, ClickHouse and processes;
    say what to fix. Exits 1 when something is broken."""
    settings = ctx.settings()
    findings = [f for check in CHECKS for f in check(settings)]
    table = Table("", "check", "detail", "what to do")
    for f in findings:
        table.add_row(MARK[f.status], f.check, f.detail, f.fix)
    Console().print(table)
    if any(f.status == FAIL for f in findings):
        sys.exit(1)
