"""Real weekly figures through the whole pipeline: the China/US crossovers come
out in the weeks an independent recomputation says, each exactly once, also
when the worker is killed mid-replay."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer

from tests.pipeline import Pipeline
from tests.weekly import WEEKLY, expected_final, rules_file, source_shares
from tokenshare import kafka_clients
from tokenshare.processes import spawn, wait_until
from tokenshare.producers.kafka_producer import EventProducer
from tokenshare.producers.weekly_replay import load_week_totals, replay_events, scaled_total
from tokenshare.settings import Settings
from tokenshare.sinks.query import run_query
from tokenshare.streams.shares.engine import load_day_sums
from tokenshare.streams.shares.windows import series


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"rules_file": rules_file(tmp_path)})


def alerts_on_topic(settings: Settings) -> list[dict[str, object]]:
    consumer = KafkaConsumer(
        settings.alerts_topic,
        bootstrap_servers=settings.kafka_bootstrap,
        **kafka_clients.CONSUMER,
        auto_offset_reset="earliest",
        consumer_timeout_ms=2000,
    )
    try:
        return [orjson.loads(m.value) for m in consumer]
    finally:
        consumer.close()


def final_crossovers(settings: Settings) -> list[tuple[str, str]]:
    return [
        (str(a["window_label"]), str(a["subject"]))
        for a in alerts_on_topic(settings)
        if a["rule"] == "crossover" and a["status"] == "final"
    ]


def send(settings: Settings, events: list[dict[str, object]]) -> None:
    with EventProducer(settings) as producer:
        for start in range(0, len(events), 50):
            producer.send_batch(events[start : start + 50])


def check_exactly_once(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    want = expected_final()
    wait_until(
        lambda: len(final_crossovers(settings)) >= len(want), 120, "the final crossover alerts"
    )
    time.sleep(3 * settings.shares_interval_s + 1)  # more ticks must add nothing
    alerts = alerts_on_topic(settings)
    assert final_crossovers(settings) == want, pipeline.logs()
    ids = [a["alert_id"] for a in alerts]
    assert len(ids) == len(set(ids)), "an alert was published twice"
    # Stored: the alerts table and the raw totals agree with the source files.
    db = settings.clickhouse_database
    wait_until(
        lambda: (
            run_query(settings, f"SELECT count() FROM {db}.alerts FINAL").rows[0][0] == len(ids)
        ),
        60,
        "the store to write the alerts",
    )
    weeks = load_week_totals(WEEKLY)
    stored = run_query(settings, f"SELECT sum(total_tokens) FROM {db}.raw_events").rows[0][0]
    assert stored == sum(scaled_total(w, 10_000) for w in weeks)
    # Every week's China and US shares, as the share stage derives them from the stored
    # day sums, equal the shares computed straight from the source files.
    sums = load_day_sums(lambda sql: run_query(settings, sql).rows, db)
    streamed = {
        ws.window.label: ws for ws in series(sums, "origin_bloc", "tokens", "iso_week", None)
    }
    source = source_shares()
    assert set(streamed) == set(source)
    for label, (china, us) in source.items():
        assert streamed[label].share("China", True) == pytest.approx(china, abs=1e-6), label
        assert streamed[label].share("US", True) == pytest.approx(us, abs=1e-6), label


def test_weekly_replay_crossovers_exactly_once(pipeline: Pipeline) -> None:
    send(pipeline.settings, list(replay_events(load_week_totals(WEEKLY))))
    pipeline.wait_drained()
    check_exactly_once(pipeline)
    # The worker's web endpoint: current shares, recent alerts, Prometheus metrics.
    base = f"http://127.0.0.1:{pipeline.settings.worker_web_port}"
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as reply:
        metrics = reply.read().decode()
    replayed = list(replay_events(load_week_totals(WEEKLY)))
    assert f"tokenshare_events_total {len(replayed)}.0" in metrics
    from prometheus_client.parser import text_string_to_metric_families

    shares = [
        sample.labels
        for family in text_string_to_metric_families(metrics)
        if family.name == "tokenshare_share_ratio"
        for sample in family.samples
    ]
    assert {"window": "iso_week", "dimension": "origin_bloc", "value": "China"} in shares
    with urllib.request.urlopen(f"{base}/alerts", timeout=10) as reply:
        recent = orjson.loads(reply.read())
    assert {(a["window_label"], a["subject"]) for a in recent if a["status"] == "final"} >= set(
        expected_final()
    )
    with urllib.request.urlopen(f"{base}/shares", timeout=10) as reply:
        assert "iso_week|origin_bloc|tokens" in orjson.loads(reply.read())


def test_worker_killed_mid_replay_loses_and_repeats_no_alert(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    events = list(replay_events(load_week_totals(WEEKLY)))
    half = len(events) * 2 // 3  # past the February crossover
    send(settings, events[:half])
    pipeline.wait_drained()
    wait_until(lambda: len(final_crossovers(settings)) >= 1, 60, "a first alert")
    worker = pipeline.workers[0]
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    send(settings, events[half:])
    restarted = spawn(settings, ["worker"], settings.home / "logs" / "worker-restarted.log")
    pipeline.workers[0] = restarted
    pipeline.wait_drained()
    check_exactly_once(pipeline)
    assert isinstance(restarted, subprocess.Popen)
