"""Back in seconds after a crash, whoever else is running: kill -9 of the worker, of
the store while analysts query it, a silently dropped Kafka link, and a full disk
under the store's data path.

Each scenario runs a steady load through the real processes, injects its fault,
and records two times in tests/RELIABILITY.md: seconds from the fault to the first
row stored that was not stored before it, and to both groups having no lag. Both
are read from committed offsets (tests/recovery.py). The ledger then checks that
nothing was lost or stored twice. Times are reported, never asserted.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.ledger import Ledger
from tests.netfault import proxied_broker
from tests.pipeline import Pipeline, serving
from tests.recovery import Offsets, SteadyLoad, measure, stored_past
from tests.reliability_report import record
from tokenshare.processes import settings_env, spawn, stop, wait_until
from tokenshare.settings import Settings
from tokenshare.streams.topics import ensure_topics

RATE = 400  # events/s: steady traffic that a 2-core machine carries with room to spare


def kill_9(proc: subprocess.Popen[bytes]) -> float:
    """SIGKILL and reap; the moment it died."""
    proc.kill()
    proc.wait()
    return time.monotonic()


def warm(offsets: Offsets) -> None:
    """Rows are flowing end to end."""
    stored_past(offsets, 0, timeout=120)
    time.sleep(2)


def test_worker_kill_9_rejoins_in_seconds(pipeline: Pipeline) -> None:
    s = pipeline.settings
    ledger = Ledger(s)
    with (
        Offsets(s) as offsets,
        ledger.producer() as producer,
        SteadyLoad(ledger, producer, rate=RATE, seed=501) as load,
    ):
        warm(offsets)
        killed = kill_9(pipeline.workers[0])
        mark = offsets.end(s.rows_topic)  # rows past this come from the new worker
        pipeline.start_worker(0)  # as a supervisor would, at once
        recovery = measure(offsets, killed, mark, load)
    figures = ledger.check()
    record(
        "kill -9 of the worker, restarted at once",
        f"SIGKILL under {RATE} events/s; the replacement rejoins as the same static member",
        1,
        figures,
        recovery,
    )


@contextmanager
def sql_loop(s: Settings) -> Iterator[list[subprocess.CompletedProcess[str]]]:
    """`tokenshare sql` run again and again, as an analyst's notebook would."""
    done = threading.Event()
    runs: list[subprocess.CompletedProcess[str]] = []
    sql = f"SELECT count() FROM {s.clickhouse_database}.raw_events"

    def loop() -> None:
        while not done.is_set():
            runs.append(
                subprocess.run(
                    [sys.executable, "-m", "tokenshare", "sql", sql],
                    env=settings_env(s),
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
            )

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield runs
    finally:
        done.set()
        thread.join()


def test_store_kill_9_comes_back_on_its_first_restart_while_sql_queries(
    pipeline: Pipeline,
) -> None:
    """The restart race: readers (the worker's share stage, a `tokenshare sql`
    loop) keep asking while the store is down; none of them may take the engine,
    so the store restarted at once owns its data path on the first try."""
    s = pipeline.settings
    ledger = Ledger(s)
    with (
        Offsets(s) as offsets,
        ledger.producer() as producer,
        sql_loop(s) as runs,
        SteadyLoad(ledger, producer, rate=RATE, seed=502) as load,
    ):
        warm(offsets)
        killed = kill_9(pipeline.store)
        mark = offsets.committed(s.store_group, s.rows_topic) or 0
        before = len(runs)
        store = pipeline.start_store()
        assert store.poll() is None and serving(s), f"restart failed: {pipeline.logs()}"
        recovery = measure(offsets, killed, mark, load)
        wait_until(lambda: len(runs) > before + 2, 60, "queries against the new store")
    figures = ledger.check()
    answered = [r for r in runs if r.returncode == 0]
    refused = [r for r in runs if r.returncode != 0]
    assert answered, "no query was answered"
    assert all("Traceback" not in r.stderr for r in runs), refused[:1]
    assert all("not serving" in r.stderr for r in refused), refused[:1]
    record(
        "kill -9 of the store while the worker runs and `tokenshare sql` queries",
        f"SIGKILL under {RATE} events/s; {len(runs)} queries ({len(refused)} refused "
        "while down); restarted once, first try",
        1,
        figures,
        recovery,
    )


@pytest.mark.timeout(600)
def test_silently_dropped_kafka_link(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Every open connection stops forwarding without a reset or FIN: the clients
    must notice by their own timeouts, reconnect, and lose nothing."""
    with proxied_broker(tmp_path, tmp_path_factory.mktemp("dropbroker")) as (link, s):
        ensure_topics(s)
        pipe = Pipeline(
            s,
            spawn(s, ["store"], tmp_path / "logs" / "store.log"),
            [spawn(s, ["worker"], tmp_path / "logs" / "worker.log")],
        )
        try:
            ledger = Ledger(s)
            with (
                ledger.producer() as producer,
                pipe.supervised() as restarts,
                SteadyLoad(ledger, producer, rate=RATE, seed=503) as load,
            ):
                with Offsets(s) as offsets:
                    warm(offsets)
                    mark = offsets.committed(s.store_group, s.rows_topic) or 0
                dropped = time.monotonic()
                link.drop_all()  # the probe's own connections were closed first
                with Offsets(s) as offsets:
                    recovery = measure(offsets, dropped, mark, load, load_after_s=20)
            pipe.wait_drained(120)
            figures = ledger.check()
            record(
                "silently dropped Kafka link",
                "every open connection stops forwarding (no RST, no FIN) under "
                f"{RATE} events/s; restarts: {', '.join(restarts) or 'none'}",
                1,
                figures,
                recovery,
            )
        finally:
            for proc in [*pipe.workers, pipe.store]:
                stop(proc)


@contextmanager
def small_disk(path: Path, size_mb: int) -> Iterator[Path]:
    """A size-limited filesystem (tmpfs) mounted at `path`, unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    assert mounted.returncode == 0, (
        f"this scenario mounts a {size_mb} MB tmpfs and needs root: {mounted.stderr}"
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> Path:
    """Write a balloon file until the filesystem is full."""
    balloon = path / "balloon"
    with balloon.open("wb") as out:
        block = b"\0" * (1 << 20)
        try:
            while True:
                out.write(block)
                out.flush()
        except OSError:
            pass
    return balloon


@pytest.mark.timeout(600)
def test_disk_full_under_the_store_stops_commits_then_resumes(settings: Settings) -> None:
    s = settings
    data = Path(s.clickhouse_dsn.removeprefix("chdb://"))
    with small_disk(data, 64):
        logs = s.home / "logs"
        store = spawn(s, ["store"], logs / "store.log")
        wait_until(lambda: serving(s) or store.poll() is not None, 120, "the store")
        pipe = Pipeline(s, store, [spawn(s, ["worker"], logs / "worker.log")])
        try:
            ledger = Ledger(s)
            with (
                Offsets(s) as offsets,
                ledger.producer() as producer,
                SteadyLoad(ledger, producer, rate=RATE, seed=504) as load,
            ):
                warm(offsets)
                balloon = fill(data)
                time.sleep(3)  # flushes in flight when the disk filled may still land
                full_at = offsets.committed(s.store_group, s.rows_topic) or 0
                time.sleep(8)
                stuck = offsets.committed(s.store_group, s.rows_topic)
                assert stuck == full_at, "the store committed rows it could not write"
                assert pipe.store.poll() is None, f"the store exited: {pipe.logs()}"
                balloon.unlink()  # space returns
                freed = time.monotonic()
                recovery = measure(offsets, freed, full_at, load, load_after_s=2)
            log = (logs / "store.log").read_text()
            assert "disk full" in log, log[-2000:]
            figures = ledger.check()
            record(
                "disk full under the store's data path",
                f"a 64 MB tmpfs filled up under {RATE} events/s for 8 s, then freed "
                "(recovery counted from the moment space returned)",
                1,
                figures,
                recovery,
            )
        finally:
            for proc in [*pipe.workers, pipe.store]:
                stop(proc)
