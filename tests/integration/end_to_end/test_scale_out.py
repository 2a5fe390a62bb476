"""Several workers share the work and the result is the one worker's result:
3 worker processes on 12 partitions against 1 worker on 12 partitions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.factories import unique
from tests.ledger import Ledger, read_json
from tests.pipeline import Pipeline
from tests.weekly import WEEKLY, expected_final, rules_file
from tokenshare.localstack import LocalKafka
from tokenshare.processes import free_ports, spawn, stop, wait_until
from tokenshare.producers.weekly_replay import load_week_totals, replay_events
from tokenshare.settings import Settings
from tokenshare.sinks.query import run_query
from tokenshare.streams.topics import ensure_topics

FIGURES: dict[int, dict[str, Any]] = {}


def run(kafka: LocalKafka, home: Path, workers: int) -> dict[str, Any]:
    home.mkdir(parents=True, exist_ok=True)
    query_port, *web_ports = free_ports(1 + workers)
    s = Settings(
        home=home,
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=unique(),
        partitions=12,
        clickhouse_dsn=f"chdb://{home / 'ch'}",
        store_query_port=query_port,
        worker_id=unique("w"),
        rules_file=rules_file(home),
    )
    ensure_topics(s)
    store = spawn(s, ["store"], home / "logs" / "store.log")
    procs = [
        spawn(
            s.model_copy(update={"worker_web_port": port}),
            ["worker", "--web-port", str(port)],
            home / "logs" / f"w{i}.log",
        )
        for i, port in enumerate(web_ports)
    ]
    pipe = Pipeline(s, store, procs)
    try:
        wait_until(
            lambda: Path(str(s.dsn).removeprefix("chdb://") + ".owner").exists(), 60, "the store"
        )
        ledger = Ledger(s)
        with ledger.producer() as producer:
            ledger.send(producer, list(replay_events(load_week_totals(WEEKLY))), batch=20)
        pipe.wait_drained(240)
        wait_until(lambda: final_alerts(s) == expected_count(), 120, "the final alerts")
        db = s.clickhouse_database
        return {
            "ledger": ledger.check().as_dict(),
            "totals": run_query(
                s, f"SELECT count(), sum(total_tokens), sum(prompt_tokens) FROM {db}.raw_events"
            ).rows,
            "rollup": run_query(
                s,
                f"SELECT dimension, value, day, sum(tokens), sum(requests) "
                f"FROM {db}.daily_rollup GROUP BY 1, 2, 3 "
                f"ORDER BY 1, 2, 3",
            ).rows,
            "alerts": sorted(
                (a["alert_id"], a["text"])
                for a in read_json(s, s.alerts_topic)
                if a["status"] == "final"
            ),
            "workers_used": sum(1 for p in procs if p.poll() is None),
        }
    finally:
        for proc in [*pipe.workers, store]:
            stop(proc)


def final_alerts(s: Settings) -> int:
    return sum(1 for a in read_json(s, s.alerts_topic) if a["status"] == "final")


def expected_count() -> int:
    return len(expected_final())


@pytest.mark.timeout(900)
def test_three_workers_equal_one(kafka: LocalKafka, tmp_path: Path) -> None:
    one = run(kafka, tmp_path / "one", workers=1)
    three = run(kafka, tmp_path / "three", workers=3)
    assert three["workers_used"] == 3
    assert three["totals"] == one["totals"]
    assert three["rollup"] == one["rollup"]
    assert [t for _, t in three["alerts"]] == [t for _, t in one["alerts"]]
    assert [i for i, _ in three["alerts"]] == [i for i, _ in one["alerts"]]
    FIGURES.update({1: one["ledger"], 3: three["ledger"]})
    print(
        f"\n1 worker: {one['ledger']}\n3 workers: {three['ledger']}\n"
        f"final alerts: {len(one['alerts'])} and {len(three['alerts'])}"
    )
