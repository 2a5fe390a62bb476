"""One owner per embedded data path; queries are read-only by construction."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tokenshare.processes import wait_until
from tokenshare.sinks.owner import OwnerLock, StoreBusy, read_owner

HOLD = """
import sys, time
from pathlib import Path
from tokenshare.sinks.owner import OwnerLock
lock = OwnerLock(Path(sys.argv[1])); lock.acquire("http://127.0.0.1:1")
print("held", flush=True); time.sleep(60)
"""


def test_second_process_cannot_own_the_same_path(tmp_path: Path) -> None:
    data = tmp_path / "ch"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(data)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        owner = read_owner(data)
        assert owner is not None and owner.pid == holder.pid
        assert owner.query_url == "http://127.0.0.1:1"
        with pytest.raises(StoreBusy, match=f"pid {holder.pid}"):
            OwnerLock(data).acquire()
    finally:
        holder.kill()
        holder.wait()
    assert read_owner(data) is None  # the lock dies with its process
    lock = OwnerLock(data)
    lock.acquire()
    lock.release()


def test_write_through_the_query_path_fails(tmp_path: Path) -> None:
    """Everything that is not a read is refused, by the engine's readonly=2 or by
    sinks.read_only: writes, DDL, readonly=0, files, INTO OUTFILE, KILL, two statements."""
    # Runs in a child: this test process already holds its own engine path.
    code = f"""
from tokenshare.settings import Settings
from tokenshare.sinks.clickhouse import connect
from tokenshare.sinks.query import offline_endpoint, run_query
s = Settings(clickhouse_dsn="chdb://{tmp_path / "ch"}")
c = connect(s.dsn)
c.command("CREATE TABLE default.t (x UInt8) ENGINE=MergeTree ORDER BY x")
c.close()
with offline_endpoint(s) as url:
    reader = connect(url, readonly=True)
    for sql in ["INSERT INTO default.t VALUES (1)", "DROP TABLE default.t",
                "SELECT 1 SETTINGS readonly=0",
                "SELECT * FROM file('/etc/hostname', 'LineAsString')",
                "SELECT 1 INTO OUTFILE '{tmp_path / "out.txt"}'", "SELECT 1; SELECT 2",
                "KILL QUERY WHERE 1",
                "SELECT * FROM url('http://127.0.0.1:9/', 'TSV', 'a String')"]:
        try:
            reader.query(sql)
        except Exception as exc:
            print("refused:", str(exc).replace(chr(10), " "))
        else:
            print("ALLOWED:", sql)
    print("settings:", reader.query("SELECT getSetting('max_execution_time') "
                                    "SETTINGS max_execution_time = 7").result_rows)
    reader.close()
print("rows:", run_query(s, "SELECT count() FROM default.t", offline=True).rows)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "ALLOWED" not in out
    assert out.count("refused:") == 8 and "readonly" in out.lower()
    assert not (tmp_path / "out.txt").exists()
    assert "settings: [(7.0,)]" in out
    assert "rows: [[0]]" in out


SHORT_HOLD = """
import sys
from pathlib import Path
from tokenshare.sinks.owner import OwnerLock
lock = OwnerLock(Path(sys.argv[1])); lock.acquire()
print("held", flush=True); sys.stdin.readline()  # until the test says so
lock.release(); print("released", flush=True); sys.stdin.readline()
"""


def test_busy_error_names_the_holders_command(tmp_path: Path) -> None:
    data = tmp_path / "ch"
    holder = subprocess.Popen(
        [sys.executable, "-c", SHORT_HOLD, str(data), "--marker-arg"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        with pytest.raises(StoreBusy) as caught:
            OwnerLock(data).acquire()
        message = str(caught.value)
        assert f"pid {holder.pid}" in message and "--marker-arg" in message
        assert "It is not a store" in message and f"kill {holder.pid}" in message
    finally:
        holder.kill()
        holder.wait()


def test_a_starting_owner_waits_for_a_short_lived_holder(tmp_path: Path) -> None:
    data = tmp_path / "ch"
    holder = subprocess.Popen(
        [sys.executable, "-c", SHORT_HOLD, str(data)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline() == b"held\n"
        progress: list[str] = []
        acquired = threading.Event()
        lock = OwnerLock(data)

        def take() -> None:
            lock.acquire(
                wait_s=300, on_wait=lambda owner, waited, limit: progress.append(str(owner))
            )
            acquired.set()

        taker = threading.Thread(target=take)
        taker.start()
        wait_until(lambda: bool(progress), 60, "a progress report while waiting")
        assert not acquired.is_set()  # still held: the waiter has not taken it
        assert str(holder.pid) in progress[0]
        holder.stdin.write(b"go\n")
        holder.stdin.flush()
        assert holder.stdout.readline() == b"released\n"
        taker.join(60)
        assert acquired.is_set()
        owner = read_owner(data)
        assert owner is not None and owner.pid == os.getpid()
        lock.release()
    finally:
        holder.kill()
        holder.wait()


def test_a_reader_never_takes_the_lock_while_no_store_serves(tmp_path: Path) -> None:
    from tokenshare.settings import Settings
    from tokenshare.sinks.query import StoreNotServing, run_query

    data = tmp_path / "ch"
    s = Settings(home=tmp_path, clickhouse_dsn=f"chdb://{data}")
    with pytest.raises(StoreNotServing, match="store not serving"):
        run_query(s, "SELECT 1")
    assert read_owner(data) is None and not data.exists()  # nothing opened, nothing held
    holder = subprocess.Popen(
        [sys.executable, "-c", SHORT_HOLD, str(data)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        with pytest.raises(StoreNotServing, match=f"pid {holder.pid}"):
            run_query(s, "SELECT 1")  # held by a non-store: "not serving yet", no wait
    finally:
        holder.kill()
        holder.wait()
