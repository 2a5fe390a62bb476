"""Several workers share the work and the result is the one worker's result:
3 worker processes on 12 partitions against 1 worker on 12 partitions; and two
workers share the share stage's evaluation (each evaluates some keys), and a
kill -9 of the one evaluating the crossovers loses no alert and repeats none."""

from __future__ import annotations

import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.factories import unique
from tests.ledger import Ledger, read_json
from tests.pipeline import Pipeline
from tests.weekly import WEEKLY, expected_final, rules_file
from tokenshare.localstack import LocalKafka
from tokenshare.processes import free_ports, spawn, stop, wait_until
from tokenshare.producers.kafka_producer import EventProducer
from tokenshare.producers.weekly_replay import load_week_totals, replay_events
from tokenshare.schema.vocabulary import DIMENSIONS
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


# --- the share stage over two workers ---------------------------------------------------


def stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10) as reply:
        shares: dict[str, Any] = orjson.loads(reply.read())["shares"]
        return shares


def try_stats(port: int) -> dict[str, Any] | None:
    try:
        return stats(port)
    except OSError:  # not serving yet
        return None


def final_crossovers(s: Settings) -> list[tuple[str, str]]:
    return [
        (str(a["window_label"]), str(a["subject"]))
        for a in read_json(s, s.alerts_topic)
        if a["rule"] == "crossover" and a["status"] == "final"
    ]


def keys_split(ports: list[int]) -> bool:
    """Every worker evaluates some keys, no key twice, every dimension somewhere."""
    found = [try_stats(p) for p in ports]
    if any(f is None or not f["keys"] for f in found):
        return False
    keys = [k for f in found if f is not None for k in f["keys"]]
    return len(keys) == len(set(keys)) and set(DIMENSIONS) <= set(keys)


def send(s: Settings, events: list[dict[str, Any]]) -> None:
    with EventProducer(s) as producer:
        for start in range(0, len(events), 50):
            producer.send_batch(events[start : start + 50])


@pytest.mark.timeout(900)
def test_two_workers_share_the_evaluation_and_a_kill_loses_and_repeats_no_alert(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    query_port, *ports = free_ports(3)
    s = Settings(
        home=tmp_path,
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=unique(),
        partitions=4,
        clickhouse_dsn=f"chdb://{tmp_path / 'ch'}",
        store_query_port=query_port,
        worker_id=unique("w"),
        rules_file=rules_file(tmp_path),
    )
    ensure_topics(s)

    def worker(port: int, name: str) -> Any:
        return spawn(
            s.model_copy(update={"worker_web_port": port}),
            ["worker", "--web-port", str(port)],
            tmp_path / "logs" / f"{name}.log",
        )

    store = spawn(s, ["store"], tmp_path / "logs" / "store.log")
    procs = [worker(port, f"w{i}") for i, port in enumerate(ports)]
    pipe = Pipeline(s, store, procs)
    try:
        wait_until(lambda: keys_split(ports), 120, "both workers to own some keys")
        events = list(replay_events(load_week_totals(WEEKLY)))
        half = len(events) * 2 // 3  # past the February crossover
        send(s, events[:half])
        pipe.wait_drained(240)
        wait_until(lambda: len(final_crossovers(s)) >= 1, 120, "a first alert")
        # Both did work: each evaluated its own keys, after the data came in. The first
        # alert can come from one worker before the other's first tick over the data.
        wait_until(
            lambda: all(stats(p)["snapshots"] > 0 for p in ports), 120, "both workers' snapshots"
        )
        before = [stats(p) for p in ports]
        assert all(sum(b["evaluations"].values()) > 0 for b in before), before
        assert all(b["reads"] > 0 and b["snapshots"] > 0 for b in before), before
        owner = next(i for i, b in enumerate(before) if "origin_bloc" in b["keys"])
        assert before[owner]["alerts"] >= 1 and before[1 - owner]["alerts"] == 0, before
        survivor_port = ports[1 - owner]

        # kill -9 the worker that fires the crossovers; the other takes its keys over.
        procs[owner].send_signal(signal.SIGKILL)
        procs[owner].wait()
        pipe.workers = [procs[1 - owner]]
        send(s, events[half:])
        pipe.wait_drained(240)
        wait_until(
            lambda: "origin_bloc" in stats(survivor_port)["keys"], 120, "the survivor to take over"
        )
        want = expected_final()
        wait_until(lambda: len(final_crossovers(s)) >= len(want), 120, "the final alerts")
        assert stats(survivor_port)["alerts"] >= 1  # it fired some after taking over

        # The killed worker comes back: the keys are split again, and it repeats nothing.
        procs[owner] = worker(ports[owner], f"w{owner}-restarted")
        pipe.workers = list(procs)
        wait_until(lambda: keys_split(ports), 120, "the keys to be split again")
        wait_until(
            lambda: all(sum(stats(p)["evaluations"].values()) > 0 for p in ports),
            60,
            "both workers to evaluate again",
        )
        time.sleep(3 * s.shares_interval_s + 4)  # idle rechecks have run: they add nothing
        alerts = read_json(s, s.alerts_topic)
        ids = [a["alert_id"] for a in alerts]
        assert len(ids) == len(set(ids)), "an alert was published twice"
        assert final_crossovers(s) == want, pipe.logs()
        print(f"\nevaluations before the kill: {[b['evaluations'] for b in before]}")
    finally:
        for proc in [*procs, store]:
            stop(proc)
