"""`tokenshare bench --smoke`: every measure runs and RESULTS.md has every section with
numbers. Timings are never asserted (the machine is shared); targets are only marked."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tokenshare.bench.config import MEASURES, TITLES

NUMBER = re.compile(r"\| [\d,.]+ (events/s|rows/s|s|MiB|events)? ?\|")


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


@pytest.mark.timeout(900)
def test_smoke_run_writes_every_section_with_numbers(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    bench = subprocess.Popen(
        [sys.executable, "-m", "tokenshare", "bench", "--smoke", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, stderr = bench.communicate(timeout=830)
    except subprocess.TimeoutExpired:
        bench.terminate()  # the bench stops its broker and children on SIGTERM
        _, stderr = bench.communicate(timeout=60)
    assert bench.returncode == 0, stderr[-5000:]
    text = out.read_text()

    for heading in ("# tokenshare benchmarks", "## Machine and versions", "## Targets"):
        assert heading in text
    for field in ("| CPU |", "| cores |", "| RAM |", "| Python |", "| Kafka |", "| date |"):
        assert field in text
    for package in ("faust-streaming", "aiokafka", "kafka-python", "clickhouse-connect", "chdb"):
        assert re.search(rf"\| {package} \| \d", text), package
    assert "tokenshare bench --smoke" in text

    for key in MEASURES:
        title = TITLES[key]
        body = _section(text, title)
        assert "**Failed:**" not in body, body
        assert NUMBER.search(body), f"no numbers in section {key}:\n{body}"
        assert "n/a" not in body.split("| ratio")[0], f"a figure is missing in {key}:\n{body}"

    rows = [line for line in _section(text, "Targets").splitlines() if ">=" in line or "<" in line]
    assert len(rows) == 14, rows
    for row in rows:  # RSS may stop short of its last checkpoint on a busy machine
        if "RSS" in row:
            continue
        assert re.search(r"\| (met|missed) \(", row), row
    side = _section(text, "Pipelines side by side")
    for pipeline in ("tokenshare worker + store", "sentry-arroyo", "quixstreams", "floor:"):
        line = next(ln for ln in side.splitlines() if pipeline in ln)
        assert "n/a" not in line, line
    # The untimed runs under py-spy: each process's busiest functions.
    full_path = _section(text, TITLES["c"])
    for process in ("worker", "store"):
        assert re.search(rf"{process}: [\d,]+ busy samples", full_path), full_path
    assert "producer: " in _section(text, TITLES["d"])
    for row in rows:  # a miss names the tables that explain it
        if "| missed (" in row:
            assert row.rstrip().rstrip("|").rstrip().split("|")[-1].strip(), row
    profile = _section(text, TITLES["profile"])
    # The validation frame the worker spends its time in (one pass: wire.decode_run).
    assert "Enricher.process" in profile and "decode_run" in profile
