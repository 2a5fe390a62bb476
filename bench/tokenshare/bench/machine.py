"""The machine and software a benchmark ran on, for RESULTS.md."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from tokenshare.bench.venvs import ARROYO, QUIX
from tokenshare.localstack.kafka import KAFKA_VERSION

PACKAGES = ("faust-streaming", "aiokafka", "kafka-python", "clickhouse-connect", "chdb")
MORE_PACKAGES = ("chdb-core", "orjson", "pydantic", "pydantic-core", "mode-streaming")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def describe(command: str, started: datetime, load_before: str) -> str:
    ram = ram_gib()
    rows = [
        ("date", started.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("command", f"`{command}`"),
        ("CPU", cpu_model()),
        ("cores", str(os.cpu_count())),
        ("RAM", f"{ram:.1f} GiB" if ram else "unknown"),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("load average (1/5/15 min) before / after", f"{load_before} / {load_average()}"),
        ("Python", platform.python_version()),
        ("Kafka", f"{KAFKA_VERSION} (single KRaft broker on loopback, started by the bench)"),
    ]
    rows += [(name, package_version(name)) for name in PACKAGES + MORE_PACKAGES]
    rows += [(f"{p.name} (peer)", f"{p.version} (own virtualenv)") for p in (ARROYO, QUIX)]
    lines = ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def now() -> datetime:
    return datetime.now(UTC)
