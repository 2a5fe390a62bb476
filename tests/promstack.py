"""Real Prometheus and Alertmanager processes for tests, on free loopback ports.

The binaries are the project's own builds (`tokenshare.localstack.gotools`: built once
from the Go module proxy, cached under ~/.cache/tokenshare); each test starts its own
process with its own config and data folder, and stops it afterwards.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tokenshare.localstack.gotools import ALERTMANAGER, PROMETHEUS, GoTool, ensure_tool
from tokenshare.processes import free_ports, stop, wait_until


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return json.loads(reply.read())


def post_json(url: str, body: Any, timeout: float = 5.0) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        text = reply.read()
    return json.loads(text) if text else None


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def _serving(tool: GoTool, home: Path, port: int, args: list[str]) -> Iterator[str]:
    binary = ensure_tool(tool)
    home.mkdir(parents=True, exist_ok=True)
    log = home / f"{tool.name}.log"
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(binary), *args], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _ready(url) or proc.poll() is not None, 120, f"{tool.name} to start")
        assert proc.poll() is None, f"{tool.name} exited:\n{log.read_text()[-3000:]}"
        yield url
    finally:
        stop(proc)


@contextmanager
def alertmanager(home: Path, config: dict[str, Any], port: int | None = None) -> Iterator[str]:
    """A running Alertmanager with ``config`` (its YAML as a dict); yields its base URL.

    Clustering is off (``--cluster.listen-address=``): one instance, no gossip port."""
    port = port or free_ports(1)[0]
    config_file = home / "alertmanager.yml"
    home.mkdir(parents=True, exist_ok=True)
    config_file.write_text(yaml.safe_dump(config))
    args = [
        f"--config.file={config_file}",
        f"--storage.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with _serving(ALERTMANAGER, home, port, args) as url:
        yield url


@contextmanager
def prometheus(home: Path, config: dict[str, Any]) -> Iterator[str]:
    """A running Prometheus with ``config``; yields its base URL."""
    (port,) = free_ports(1)
    config_file = home / "prometheus.yml"
    home.mkdir(parents=True, exist_ok=True)
    config_file.write_text(yaml.safe_dump(config))
    args = [
        f"--config.file={config_file}",
        f"--storage.tsdb.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with _serving(PROMETHEUS, home, port, args) as url:
        yield url


def instant_query(url: str, promql: str) -> list[dict[str, Any]]:
    """The result vector of an instant query (``/api/v1/query``)."""
    reply = get_json(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    assert reply["status"] == "success", reply
    result: list[dict[str, Any]] = reply["data"]["result"]
    return result
