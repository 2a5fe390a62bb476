"""The one owner of an embedded ClickHouse data path.

chDB lets one process open a data path; a second fails on the engine's lock
file with an obscure error. tokenshare makes the rule explicit: the process
that owns the store holds an exclusive ``flock`` on ``<path>.owner`` and
writes there how to reach it (pid, query URL). Others read that file and send
their queries to the owner instead of opening the engine themselves.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson


class StoreBusy(RuntimeError):
    """Another live process owns the embedded store."""


@dataclass(frozen=True, slots=True)
class OwnerInfo:
    pid: int
    query_url: str | None


def lock_path(data_path: Path) -> Path:
    return data_path.with_name(data_path.name + ".owner")


def data_path_of(dsn: str) -> Path:
    """The folder of a ``chdb://`` DSN; the engine options after ``?`` are not part of it
    (``chdb:///data?config-file=/etc/chdb.xml`` is the folder ``/data``)."""
    return Path(dsn.removeprefix("chdb://").partition("?")[0])


class OwnerLock:
    """Exclusive ownership of one embedded data path, held until release()."""

    def __init__(self, data_path: Path) -> None:
        self.data_path = data_path
        self.path = lock_path(data_path)
        self._file: IO[bytes] | None = None

    def acquire(self, query_url: str | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+b")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            owner = read_owner(self.data_path)
            who = f"pid {owner.pid}" if owner else "another process"
            raise StoreBusy(
                f"the embedded store {self.data_path} is owned by {who}. "
                "Run queries with `tokenshare sql` (they are routed to the owner), stop "
                "the owner first, or use a ClickHouse server DSN to run several writers."
            ) from None
        handle.truncate(0)
        handle.write(orjson.dumps({"pid": os.getpid(), "query_url": query_url}))
        handle.flush()
        self._file = handle

    def publish(self, query_url: str) -> None:
        """Record where the owner serves queries, once its server is up."""
        if self._file is None:
            raise RuntimeError("publish() before acquire()")
        self._file.truncate(0)
        self._file.seek(0)
        self._file.write(orjson.dumps({"pid": os.getpid(), "query_url": query_url}))
        self._file.flush()

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.truncate(0)
            self._file.close()  # closing drops the flock
            self._file = None


def read_owner(data_path: Path) -> OwnerInfo | None:
    """Who owns `data_path` now, or None when nobody holds the lock."""
    path = lock_path(data_path)
    if not path.exists():
        return None
    with path.open("rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held exclusively: an owner is alive
        else:
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None
        raw = handle.read()
    if not raw:
        return OwnerInfo(pid=-1, query_url=None)
    doc = orjson.loads(raw)
    return OwnerInfo(pid=int(doc["pid"]), query_url=doc.get("query_url"))
