"""The store's query side in a child process, without Kafka: it owns an embedded data
path as ``tokenshare store`` does (sinks.owner), holds typed sample rows, and serves
the store's own endpoint (sinks.query.QueryServer) until its stdin closes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from tokenshare.settings import Settings

#: The sample rows, as clients should read them back.
BIG = 2**64 - 1  # UInt64 past 2^63
ROWS = [
    (1, datetime(2026, 1, 1, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")), Decimal("1.2345"), "x"),
    (BIG, datetime(2026, 2, 1, 0, 30, tzinfo=ZoneInfo("Asia/Shanghai")), Decimal("-3.5"), "y"),
]

CHILD = """
import sys
from tokenshare.settings import Settings
from tokenshare.sinks.clickhouse import connect
from tokenshare.sinks.owner import OwnerLock, data_path_of
from tokenshare.sinks.query import QueryServer
s = Settings(home=sys.argv[1], clickhouse_dsn=sys.argv[2], store_query_port=0)
lock = OwnerLock(data_path_of(s.dsn)); lock.acquire()
writer = connect(s.dsn)
writer.command("CREATE DATABASE IF NOT EXISTS tokenshare")
writer.command("CREATE TABLE IF NOT EXISTS tokenshare.typed (n UInt64,"
               " at DateTime('Asia/Shanghai'), price Decimal(18, 4), label String)"
               " ENGINE = MergeTree ORDER BY n")
writer.command("TRUNCATE TABLE tokenshare.typed")
writer.command("INSERT INTO tokenshare.typed VALUES (1, '2026-01-01 10:00:00', 1.2345, 'x'),"
               " (18446744073709551615, '2026-02-01 00:30:00', -3.5, 'y')")
server = QueryServer(s)
lock.publish(server.url)
print(server.url, flush=True)
sys.stdin.read()
server.close(); writer.close(); lock.release()
"""


def settings_for(folder: Path) -> Settings:
    return Settings(home=folder, clickhouse_dsn=f"chdb://{folder / 'clickhouse'}")


@contextmanager
def query_store(folder: Path) -> Iterator[str]:
    """A serving owner of `folder`'s data path; yields its SQL URL."""
    s = settings_for(folder)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(folder), s.dsn],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        url = child.stdout.readline().strip()
        assert url.startswith("http://"), f"the query store did not start (exit {child.poll()})"
        yield url
        child.stdin.close()
        child.wait(60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
