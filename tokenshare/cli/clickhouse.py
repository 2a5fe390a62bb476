"""Commands that manage the ClickHouse schema: migrate."""

from __future__ import annotations

import click

from tokenshare.cli.context import Context, console, fail


@click.command()
@click.pass_obj
def migrate(ctx: Context) -> None:
    """Create the ClickHouse schema, or apply the migrations it lacks, and exit.

    The store does the same on start. In cluster mode with
    TOKENSHARE_CLICKHOUSE_ON_CLUSTER=false (no distributed DDL), run it against
    every node in turn: each node's DSN, the same settings otherwise.
    """
    from tokenshare.sinks.clickhouse import StoreError, connect, redact
    from tokenshare.sinks.clickhouse import migrate as apply_migrations
    from tokenshare.sinks.cluster import Cluster, ClusterRenderError
    from tokenshare.sinks.owner import OwnerLock, StoreBusy, data_path_of

    settings = ctx.settings()
    cluster = Cluster.of(settings)
    # Embedded: the engine opens one data path per process; a running store owns it.
    lock = OwnerLock(data_path_of(settings.dsn)) if settings.embedded else None
    try:
        if lock is not None:  # a short-lived holder (an offline query) is waited for
            lock.acquire(wait_s=settings.store_lock_wait_s)
        client = connect(settings.dsn, cluster=cluster)
        try:
            applied = apply_migrations(client, settings.clickhouse_database, cluster)
        finally:
            client.close()
    except StoreBusy as exc:
        fail(
            str(exc),
            "a running store applies the migrations when it starts (restart it); "
            "another holder: let it finish, then run this again",
        )
    except ClusterRenderError as exc:
        fail(str(exc), "a migration needs a cluster rule in sinks/cluster.py")
    except StoreError as exc:
        hint = "fix the ClickHouse side as the message says, then run it again"
        if cluster is not None and cluster.on_cluster:
            hint += (
                "; servers without distributed DDL: set TOKENSHARE_CLICKHOUSE_ON_CLUSTER=false "
                "and run `tokenshare migrate` against each node"
            )
        fail(str(exc), hint)
    finally:
        if lock is not None:
            lock.release()
    mode = cluster.describe() if cluster else "single node"
    console.print(f"{settings.clickhouse_database} at {redact(settings.dsn)} ({mode})")
    console.print(f"applied: {', '.join(applied) or 'nothing (the schema is up to date)'}")
