"""The one owner of an embedded ClickHouse data path.

chDB lets one process open a data path; a second fails on the engine's lock
file with an obscure error. tokenshare makes the rule explicit: the process
that owns the store holds an exclusive ``flock`` on ``<path>.owner`` and
writes there how to reach it (pid, query URL). Readers send their queries to
that URL and never take the lock themselves; only an explicit offline reader
(``tokenshare sql --offline``) or a migration holds it briefly while no store
runs, which is why a starting store waits a bounded time for the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable
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

    @property
    def command(self) -> str:
        """The holder's command line, from /proc (empty when it cannot be read)."""
        return command_line(self.pid)

    def describe(self) -> str:
        """'pid 123 (`tokenshare sql --offline ...`)', for error messages."""
        if self.pid < 0:
            return "a process that has not written its pid yet"
        command = self.command
        return f"pid {self.pid} (`{command}`)" if command else f"pid {self.pid}"


def command_line(pid: int) -> str:
    """`pid`'s command line as one string, at most 200 characters."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    words = [" ".join(w.decode(errors="replace").split()) for w in raw.split(b"\0") if w]
    script = len(words) > 1 and not words[1].startswith("-")
    if script and Path(words[0]).name.startswith("python"):
        words = words[1:]  # `python /venv/bin/tokenshare store` reads `tokenshare store`
    if words:
        words[0] = Path(words[0]).name
    text = " ".join(w if len(w) <= 60 else w[:57] + "..." for w in words)
    return text if len(text) <= 200 else text[:197] + "..."


def lock_path(data_path: Path) -> Path:
    return data_path.with_name(data_path.name + ".owner")


def data_path_of(dsn: str) -> Path:
    """The folder of a ``chdb://`` DSN; the engine options after ``?`` are not part of it
    (``chdb:///data?config-file=/etc/chdb.xml`` is the folder ``/data``)."""
    return Path(dsn.removeprefix("chdb://").partition("?")[0])


#: What a waiting store is told every few seconds: (holder, waited s, limit s).
WaitProgress = Callable[[OwnerInfo | None, float, float], None]


class OwnerLock:
    """Exclusive ownership of one embedded data path, held until release()."""

    def __init__(self, data_path: Path) -> None:
        self.data_path = data_path
        self.path = lock_path(data_path)
        self._file: IO[bytes] | None = None
        #: When acquire() found the lock left by an owner that died without releasing
        #: it (kill -9, OOM, power): that owner's last write to the lock file, epoch s.
        self.crashed_at: float | None = None

    def acquire(
        self,
        query_url: str | None = None,
        *,
        wait_s: float = 0.0,
        on_wait: WaitProgress | None = None,
    ) -> None:
        """Take the lock; wait up to `wait_s` for a holder that is not a serving
        store (a migration, an offline query), calling `on_wait` every 2 s.
        Raises StoreBusy naming the holder when it is still held."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        told = started
        while True:
            handle = self.path.open("a+b")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                handle.close()
            owner = read_owner(self.data_path)
            waited = time.monotonic() - started
            if (owner is not None and owner.query_url) or waited >= wait_s:
                raise StoreBusy(busy_message(self.data_path, owner, waited)) from None
            if on_wait is not None and time.monotonic() - told >= 2.0:
                told = time.monotonic()
                on_wait(owner, waited, wait_s)
            time.sleep(0.1)
        handle.seek(0)
        if handle.read(1):  # a clean release empties the file: its owner died holding it
            self.crashed_at = os.fstat(handle.fileno()).st_mtime
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


def busy_message(data_path: Path, owner: OwnerInfo | None, waited_s: float = 0.0) -> str:
    """What holds `data_path`, and what to do about it."""
    who = owner.describe() if owner is not None else "another process"
    if owner is not None and owner.query_url:
        return (
            f"the embedded store {data_path} is owned by a running store, {who}, serving "
            f"SQL at {owner.query_url}. Query it there (`tokenshare sql` does), stop it "
            "before starting another, or use a ClickHouse server DSN to run several stores."
        )
    after = f" after waiting {waited_s:.0f} s" if waited_s >= 1 else ""
    return (
        f"the embedded store {data_path} is still held by {who}{after}. It is not a "
        f"store: let it finish, or stop it (`kill {owner.pid if owner else 'PID'}`), "
        "then retry; TOKENSHARE_STORE_LOCK_WAIT_S sets how long a starting store waits."
    )


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
