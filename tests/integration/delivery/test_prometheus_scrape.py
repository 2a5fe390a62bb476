"""A real Prometheus scrapes a running worker and store, and what it stored adds up to
the events sent; the shipped alerting rules load and evaluate against those series.

Prometheus v3.16.0 (module v0.316.0) is built from the Go module proxy once
(tokenshare.localstack.gotools); the test starts it with a 1 s scrape interval.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.factories import bad_inputs, event
from tests.paths import ROOT
from tests.pipeline import Pipeline, serving
from tests.promstack import get_json, instant_query, prometheus
from tokenshare.localstack.gotools import PROMETHEUS, ensure_tool
from tokenshare.processes import free_ports, spawn, stop, wait_until
from tokenshare.producers.kafka_producer import EventProducer
from tokenshare.settings import Settings

RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
N = 600


@pytest.fixture
def running(settings: Settings) -> Iterator[Pipeline]:
    """Store and worker, the store's metrics on a free port of its own."""
    ensure_tool(PROMETHEUS)  # a first build is not the pipeline's time
    (metrics_port,) = free_ports(1)
    s = settings.model_copy(update={"store_metrics_port": metrics_port})
    logs = s.home / "logs"
    store = spawn(s, ["store"], logs / "store.log")
    wait_until(lambda: serving(s) or store.poll() is not None, 120, "the store")
    worker = spawn(s, ["worker"], logs / "worker.log")
    pipeline = Pipeline(s, store, [worker])
    yield pipeline
    for proc in [*pipeline.workers, pipeline.store]:
        stop(proc)


def value(url: str, promql: str) -> float | None:
    result = instant_query(url, promql)
    return float(result[0]["value"][1]) if result else None


def scrape_config(s: Settings) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "tokenshare-worker",
                "static_configs": [{"targets": [f"127.0.0.1:{s.worker_web_port}"]}],
            },
            {
                "job_name": "tokenshare-store",
                "static_configs": [{"targets": [f"127.0.0.1:{s.store_metrics_port}"]}],
            },
        ],
    }


def test_prometheus_scrapes_worker_and_store(running: Pipeline, tmp_path: Path) -> None:
    s = running.settings
    valid = [event(i, seed=7) for i in range(N)]
    bad = bad_inputs()
    with EventProducer(s) as producer:
        for start in range(0, N, 100):
            producer.send_batch(valid[start : start + 100])
        for _, raw in bad:
            producer.send_raw(raw)
        assert producer.stats.failed == 0
    running.wait_drained()

    with prometheus(tmp_path / "prometheus", scrape_config(s)) as url:
        counted = ("sum(tokenshare_events_total)", "sum(tokenshare_store_rows_total)")
        try:
            wait_until(
                lambda: [value(url, q) for q in counted] == [N, N],
                120,
                "Prometheus to scrape every event counted",
            )
        except TimeoutError as exc:
            seen = {q: value(url, q) for q in counted}
            targets = get_json(f"{url}/api/v1/targets")["data"]["activeTargets"]
            health = [(t["scrapeUrl"], t["health"], t["lastError"]) for t in targets]
            raise AssertionError(f"expected {N} for {seen}; targets {health}") from exc
        up = {r["metric"]["job"]: r["value"][1] for r in instant_query(url, "up")}
        assert up == {"tokenshare-worker": "1", "tokenshare-store": "1"}

        # Worker: events, dead letters, tokens by kind, as sent.
        assert value(url, "sum(tokenshare_dead_letters_total)") == len(bad)
        by_kind = {
            r["metric"]["kind"]: float(r["value"][1])
            for r in instant_query(url, "sum by (kind) (tokenshare_tokens_total)")
        }
        assert by_kind == {
            "prompt": sum(e["prompt_tokens"] for e in valid),
            "completion": sum(e["completion_tokens"] for e in valid),
        }
        models = instant_query(url, "count by (model) (tokenshare_tokens_total)")
        assert len(models) > 1
        assert (value(url, "sum(tokenshare_batch_duration_seconds_count)") or 0) >= 1

        # Store: every row stored once, none replayed; flushes observed.
        stored = value(url, 'sum(tokenshare_store_rows_total{outcome="stored"})')
        assert stored == N
        assert (value(url, "sum(tokenshare_store_flush_duration_seconds_count)") or 0) >= 1

        # The shipped rules: every metric they use has series here, and each rule
        # has been evaluated without error against them.
        for name in sorted(set(re.findall(r"tokenshare_\w+", RULES.read_text()))):
            assert instant_query(url, f'count({{__name__="{name}"}})'), f"{name}: no series"

        def evaluated() -> list[dict[str, Any]]:
            groups = get_json(f"{url}/api/v1/rules")["data"]["groups"]
            return [r for g in groups for r in g["rules"]]

        shipped = [
            r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]
        ]
        wait_until(
            lambda: all(r["lastEvaluation"] > "2000" for r in evaluated()),
            60,
            "Prometheus to evaluate the shipped rules",
        )
        rules = evaluated()
        assert sorted(r["name"] for r in rules) == sorted(shipped)
        assert all(r["health"] == "ok" for r in rules), rules
        firing = {r["name"] for r in rules if r["state"] != "inactive"}
        assert "TokenshareWorkerDown" not in firing


def test_prometheus_binary_is_the_pinned_release() -> None:
    done = subprocess.run(
        [str(ensure_tool(PROMETHEUS)), "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("prometheus, version 3.16.0 ")
