"""Virtualenvs of the peers, made by the bench and kept between runs.

sentry-arroyo and Quix Streams pin confluent-kafka versions of their own, so
each gets a virtualenv of its own under ~/.cache/tokenshare/bench-venvs/
<peer>-<version>, with the peer and the libraries `tokenshare.bench.peer_job`
needs at this interpreter's versions (the same chDB for everyone). tokenshare
itself is not installed there: the peer's process finds this tree's portions
on PYTHONPATH, so it always runs the code under test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import tokenshare

ROOT = Path.home() / ".cache" / "tokenshare" / "bench-venvs"

#: What peer_job imports, pinned to this interpreter's versions where a peer allows.
SHARED = ("chdb", "clickhouse-connect", "pyarrow", "numpy", "orjson", "lz4")
#: Ranges from tokenshare's own requirements where a peer pins its own version.
RANGES = {"pydantic": "pydantic>=2.10,<3"}


@dataclass(frozen=True, slots=True)
class Peer:
    name: str  # the distribution on PyPI
    version: str
    module: str  # the bench's script for it

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


ARROYO = Peer("sentry-arroyo", "2.48.0", "tokenshare.bench.peer_arroyo")
QUIX = Peer("quixstreams", "3.28.1", "tokenshare.bench.peer_quix")


def requirements(peer: Peer) -> list[str]:
    pins = [f"{peer.name}=={peer.version}"]
    for name in SHARED:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pins.append(name)
    return pins + list(RANGES.values())


def folder(peer: Peer, root: Path = ROOT) -> Path:
    return root / f"{peer.name.removeprefix('sentry-')}-{peer.version}"


def ensure(peer: Peer, log: Path, root: Path = ROOT) -> Path:
    """The peer's python, making its virtualenv first if it is missing or stale."""
    home = folder(peer, root)
    python = home / "bin" / "python"
    wanted = "\n".join(requirements(peer)) + "\n"
    stamp = home / "bench-requirements.txt"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        if not python.exists():
            subprocess.run(
                [_base_python(), "-m", "venv", str(home)], stdout=out, stderr=out, check=True
            )
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *requirements(peer)],
            stdout=out,
            stderr=out,
            check=False,
        )
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"installing {peer.label} into {home} failed:\n{tail}")
    stamp.write_text(wanted)
    return python


def _base_python() -> str:
    """The interpreter this venv was made from (a venv of a venv would share its packages)."""
    base = (
        Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    )
    return str(base) if base.exists() else sys.executable


def pythonpath() -> str:
    """The folders holding this tree's tokenshare portions."""
    roots = dict.fromkeys(str(Path(p).parent) for p in tokenshare.__path__)
    return os.pathsep.join(roots)
