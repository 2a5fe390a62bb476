"""One owner per embedded data path; queries are read-only by construction."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
    # Runs in a child: this test process already holds its own engine path.
    code = f"""
from tokenshare.settings import Settings
from tokenshare.sinks.clickhouse import connect
from tokenshare.sinks.query import QueryError, run_query
s = Settings(clickhouse_dsn="chdb://{tmp_path / "ch"}")
c = connect(s.dsn)
c.command("CREATE TABLE default.t (x UInt8) ENGINE=MergeTree ORDER BY x")
c.close()
for sql in ["INSERT INTO default.t VALUES (1)", "DROP TABLE default.t",
            "SELECT 1 SETTINGS readonly=0"]:
    try:
        run_query(s, sql)
    except QueryError as exc:
        print("refused:", exc)
    else:
        print("ALLOWED:", sql)
print("rows:", run_query(s, "SELECT count() FROM default.t").rows)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "ALLOWED" not in out
    assert out.count("refused:") == 3 and "readonly" in out.lower()
    assert "rows: [[0]]" in out
