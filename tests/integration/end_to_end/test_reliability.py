"""No data lost, none duplicated: fault scenarios against the real broker and
ClickHouse engine, each checked by the ledger (tests/ledger.py).

Processes are the real `tokenshare worker` and `tokenshare store`, started,
killed and restarted by the tests; in-process faults come from
TOKENSHARE_FAULTS (tokenshare/faults.py). Set TOKENSHARE_RELIABILITY_REPORT
to a path to write the figures of the run as a markdown report.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, TopicPartition
from kafka.errors import KafkaError, NoError
from kafka.structs import OffsetAndMetadata

from tests.factories import bad_inputs, event
from tests.ledger import Ledger, read_json
from tests.netfault import FaultyLink, proxied_broker
from tests.pipeline import Pipeline
from tests.reliability_report import record
from tokenshare import kafka_clients
from tokenshare.localstack import LocalKafka
from tokenshare.processes import free_ports, spawn, stop, wait_until
from tokenshare.settings import Settings
from tokenshare.sinks.query import run_query
from tokenshare.streams.topics import ensure_topics, group_lag


def events(n: int, seed: int) -> list[dict[str, Any]]:
    return [event(i, seed=seed) for i in range(n)]


def kill(proc: Any) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


@pytest.mark.timeout(900)
def test_kill_9_twenty_times(pipeline: Pipeline) -> None:
    """Worker and store killed with SIGKILL 20 times, by the test at random moments
    and by themselves at the checkpoint's edges (before insert, after insert before
    commit, after publishing before commit)."""
    faults = {
        "TOKENSHARE_FAULTS": "store.before_insert=0.03,store.after_insert=0.05,"
        "store.before_commit=0.05,worker.after_publish=0.05"
    }
    ledger = Ledger(pipeline.settings)
    bad = [value for _, value in bad_inputs()]
    rnd = random.Random(20)
    stop(pipeline.workers[0])
    stop(pipeline.store)
    pipeline.start_store(faults)
    pipeline.start_worker(0, faults)
    kills = 0
    with ledger.producer() as producer:
        for round_ in range(20):
            ledger.send(producer, events(400, seed=100 + round_), batch=rnd.choice([1, 20, 80]))
            ledger.inject_invalid(producer, bad[round_ % len(bad) : round_ % len(bad) + 1])
            producer.flush()
            time.sleep(rnd.uniform(0.2, 1.5))
            victim = "store" if round_ % 2 else "worker"
            proc = pipeline.store if victim == "store" else pipeline.workers[0]
            kills += proc.poll() is None  # the fault points may have got there first
            kill(proc)
            if pipeline.workers[0].poll() is not None:
                pipeline.start_worker(0, faults)
            if pipeline.store.poll() is not None:
                pipeline.start_store(faults)
    # Calm again: restart without faults and let everything drain.
    kill(pipeline.store)
    kill(pipeline.workers[0])
    pipeline.start_store()
    pipeline.start_worker(0)
    pipeline.wait_drained(240)
    figures = ledger.check()
    record(
        "kill -9 of worker and store",
        f"SIGKILL x{kills} by the test, plus crash points "
        "before insert / after insert / before commit / after publish",
        20,
        figures,
    )


def test_clickhouse_unavailable_then_back(pipeline: Pipeline) -> None:
    """Inserts fail for 8 s: the store backs off, commits nothing it has not
    written, and catches up."""
    s = pipeline.settings
    stop(pipeline.store)
    pipeline.start_store({"TOKENSHARE_FAULTS": "store.down_s=8"})
    ledger = Ledger(s)
    with ledger.producer() as producer:
        ledger.send(producer, events(3_000, seed=7))
    time.sleep(3)
    assert group_lag(s, s.store_group, s.rows_topic) != 0, "committed rows it could not write"
    count = run_query(s, f"SELECT count() FROM {s.clickhouse_database}.raw_events").rows[0][0]
    assert count == 0
    pipeline.wait_drained(120)
    record("ClickHouse unavailable for 8 s", "every insert fails, then succeeds", 1, ledger.check())
    assert "store write failed" in (s.home / "logs" / "store.log").read_text()


def test_lost_insert_replies_are_deduplicated(pipeline: Pipeline) -> None:
    """Half the inserts 'lose their reply' after succeeding: the retry carries the
    same deduplication token and ClickHouse drops it."""
    stop(pipeline.store)
    pipeline.start_store({"TOKENSHARE_FAULTS": "store.lose_reply=0.5"})
    ledger = Ledger(pipeline.settings)
    with ledger.producer() as producer:
        for part in range(5):
            ledger.send(producer, events(1_000, seed=30 + part))
            producer.flush()
            time.sleep(0.7)
    pipeline.wait_drained()
    record("insert reply lost", "50% of successful inserts reported as failed", 5, ledger.check())


@pytest.fixture
def settings8(settings: Settings) -> Settings:
    s = settings.model_copy(update={"partitions": 8, "topic_prefix": settings.topic_prefix + "x"})
    ensure_topics(s)
    return s


def test_rebalance_second_worker_joins_first_leaves(settings8: Settings, tmp_path: Path) -> None:
    s = settings8
    logs = tmp_path / "logs"
    store = spawn(s, ["store"], logs / "store.log")
    first = spawn(s, ["worker"], logs / "w1.log")
    pipe = Pipeline(s, store, [first])
    try:
        ledger = Ledger(s)
        with ledger.producer() as producer:
            ledger.send(producer, events(2_000, seed=40), batch=1)
            producer.flush()
            port = free_ports(1)[0]
            second = spawn(
                s.model_copy(update={"worker_web_port": port}),
                ["worker", "--web-port", str(port)],
                logs / "w2.log",
            )
            pipe.workers.append(second)
            ledger.send(producer, events(2_000, seed=41), batch=10)
            producer.flush()
            time.sleep(2)
            stop(first)  # leaves while events still flow
            pipe.workers.remove(first)
            ledger.send(producer, events(2_000, seed=42), batch=1)
        pipe.wait_drained(180)
        record(
            "rebalance, 8 partitions", "a second worker joins, the first leaves", 1, ledger.check()
        )
    finally:
        for proc in [*pipe.workers, store]:
            stop(proc)


def test_group_reset_to_zero_and_full_replay_changes_nothing(pipeline: Pipeline) -> None:
    s = pipeline.settings
    ledger = Ledger(s)
    with ledger.producer() as producer:
        ledger.send(producer, events(3_000, seed=50))
        ledger.inject_invalid(producer, [b"not json"])
    pipeline.wait_drained()
    before = snapshot(s)
    stop(pipeline.workers[0])
    stop(pipeline.store)
    admin = KafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
    try:
        for group, topic in ((s.ingest_group, s.events_topic), (s.store_group, s.rows_topic)):
            zero = {
                TopicPartition(topic, p): OffsetAndMetadata(0, "", -1) for p in range(s.partitions)
            }
            # Static members do not leave on a clean stop: the group empties (and
            # accepts new offsets) once their sessions have expired.
            wait_until(partial(reset, admin, group, zero), 60, f"group {group} to empty")
    finally:
        admin.close()
    pipeline.start_store()
    pipeline.start_worker(0)
    pipeline.wait_drained()
    assert snapshot(s) == before
    figures = ledger.check()
    # The replay sends the bad input to the dead letters again, from the same source.
    assert figures.dead_letter_repeats == 1, figures
    record(
        "consumer groups reset to offset 0, full replay",
        "every event read and written again",
        1,
        figures,
    )


def reset(admin: KafkaAdminClient, group: str, offsets: dict[Any, Any]) -> bool:
    """Set the group's offsets; False while the broker refuses (members still in it)."""
    try:
        errors = admin.alter_group_offsets(group, offsets)
    except KafkaError:
        return False
    # Refusals come back per partition (UNKNOWN_MEMBER_ID while members remain).
    return all(error is None or error is NoError for error in errors.values())


def snapshot(s: Settings) -> tuple[Any, ...]:
    db = s.clickhouse_database
    return tuple(
        tuple(map(tuple, run_query(s, sql.format(db=db)).rows))
        for sql in (
            # Float sums depend on the order parts are read in: compare them rounded.
            "SELECT count(), sum(total_tokens), round(sum(cost_usd), 6) FROM {db}.raw_events",
            "SELECT dimension, value, day, sum(tokens), sum(requests) FROM {db}.daily_rollup "
            "GROUP BY dimension, value, day ORDER BY dimension, value, day",
        )
    )


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A broker of this test's own: it gets stopped and killed."""
    port, controller = free_ports(2)
    broker = LocalKafka(tmp_path_factory.mktemp("broker"), port=port, controller_port=controller)
    broker.start(timeout=120)
    yield broker
    broker.stop()


@pytest.mark.timeout(600)
def test_broker_stop_and_kill_while_producing(own_broker: LocalKafka, tmp_path: Path) -> None:
    s = Settings(
        home=tmp_path,
        kafka_bootstrap=own_broker.bootstrap,
        topic_prefix="b",
        partitions=4,
        clickhouse_dsn=f"chdb://{tmp_path / 'ch'}",
        store_query_port=free_ports(1)[0],
        worker_web_port=free_ports(1)[0],
    )
    ensure_topics(s)
    store = spawn(s, ["store"], tmp_path / "logs" / "store.log")
    worker = spawn(s, ["worker"], tmp_path / "logs" / "worker.log")
    pipe = Pipeline(s, store, [worker])
    ledger = Ledger(s)
    try:
        with pipe.supervised() as restarts, ledger.producer() as producer:
            config = producer._client.config
            assert config["acks"] in (-1, "all") and config["enable_idempotence"] is True
            for how in ("SIGTERM", "SIGKILL"):
                ledger.send(producer, events(1_500, seed=60 + len(how)))
                if how == "SIGTERM":
                    own_broker.stop()
                else:
                    pid = own_broker.pid()
                    assert pid is not None
                    os.kill(pid, signal.SIGKILL)
                    wait_until(lambda: not own_broker.is_running(), 30, "the broker to die")
                time.sleep(2)
                own_broker.start(timeout=120)
                ledger.send(producer, events(1_500, seed=70 + len(how)))
                producer.flush(timeout=120)
            wait_until(pipe.drained, 240, "worker and store to commit everything")
        pipe.wait_drained(60)
        figures = ledger.check()
        assert figures.acked == figures.produced, "the idempotent producer gave up on events"
        record(
            "broker stop (SIGTERM) and kill (SIGKILL) while producing",
            f"broker down ~2 s twice; acks=all, idempotence on; restarts: {restarts or 'none'}",
            2,
            figures,
        )
    finally:
        for proc in [*pipe.workers, pipe.store]:
            stop(proc)


def test_bad_input_goes_to_dead_letters_and_the_rest_is_stored(pipeline: Pipeline) -> None:
    s = pipeline.settings
    ledger = Ledger(s)
    good = events(1_000, seed=80)
    bad = [value for _, value in bad_inputs()]
    oversized = b'{"event_id": "big", "pad": "' + b"x" * (s.max_message_bytes + 10) + b'"}'
    with ledger.producer(max_request_size=16 * 1024 * 1024) as producer:
        ledger.send(producer, good[:500], batch=25)
        ledger.inject_invalid(producer, [*bad, oversized])
        ledger.send(producer, good[500:], batch=1)
        # The same event id again, other figures: a conflict, not a repeat.
        producer.send_batch(
            [{**good[0], "completion_tokens": int(good[0]["completion_tokens"]) + 7}]
        )
        ledger.invalid_injected += 1
    pipeline.wait_drained()
    assert pipeline.workers[0].poll() is None and pipeline.store.poll() is None
    figures = ledger.check()
    letters = read_json_headers(s)
    assert any(b"exceeds" in h["error"] for h in letters)
    assert any(b"different payload" in h["error"] for h in letters)
    record(
        "bad input",
        f"{len(bad)} kinds of invalid message, one oversized message, one "
        "conflicting repeat, between valid events",
        1,
        figures,
    )


def read_json_headers(s: Settings) -> list[dict[str, bytes]]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        s.dlq_topic,
        bootstrap_servers=s.kafka_bootstrap,
        **kafka_clients.CONSUMER,
        auto_offset_reset="earliest",
        consumer_timeout_ms=2000,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    try:
        return [dict(m.headers) for m in consumer]
    finally:
        consumer.close()


def test_mostly_invalid_stream_trips_the_breaker(pipeline: Pipeline) -> None:
    s = pipeline.settings
    ledger = Ledger(s)
    with ledger.producer() as producer:
        ledger.inject_invalid(producer, [b"garbage %d" % i for i in range(3_000)])
        ledger.send(producer, events(200, seed=90), batch=1)
    pipeline.wait_drained()
    figures = ledger.figures()
    assert figures.lost == 0 and figures.duplicated == 0 and figures.stored == 200
    assert figures.dead_letters < figures.invalid_injected / 5, "the breaker did not shed"
    breaker = [a for a in read_json(s, s.alerts_topic) if a["rule"] == "dead_letter_breaker"]
    assert [a["subject"] for a in breaker][:1] == ["opened"]
    record(
        "mostly invalid stream",
        "3000 invalid messages, then 200 valid: the breaker opens, "
        f"samples dead letters ({figures.dead_letters} kept) and alerts",
        1,
        figures,
    )


@pytest.mark.timeout(600)
def test_latency_jitter_and_resets_on_the_kafka_link(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Every client (producer, worker, store) talks to the broker through a proxy
    that delays each chunk by 20 +/- 15 ms and resets all connections three times."""
    with proxied_broker(tmp_path, tmp_path_factory.mktemp("netbroker")) as (link, s):
        run_with_latency_and_resets(link, s, tmp_path)


def run_with_latency_and_resets(link: FaultyLink, s: Settings, tmp_path: Path) -> None:
    pipe: Pipeline | None = None
    try:
        ensure_topics(s)
        store = spawn(s, ["store"], tmp_path / "logs" / "store.log")
        worker = spawn(s, ["worker"], tmp_path / "logs" / "worker.log")
        pipe = Pipeline(s, store, [worker])
        link.latency_s, link.jitter_s = 0.020, 0.015
        ledger = Ledger(s)
        with pipe.supervised() as restarts:
            with ledger.producer() as producer:
                for part in range(6):
                    ledger.send(producer, events(800, seed=110 + part), batch=rnd_batch(part))
                    producer.flush(timeout=120)
                    if part % 2 == 1:
                        link.reset_all()
                    time.sleep(1)
            restarts += drain_with_watchdog(pipe, timeout=300, stall=45)
        pipe.wait_drained(60)
        figures = ledger.check()
        record(
            "latency, jitter and resets on the Kafka link",
            f"20 +/- 15 ms per chunk, every connection reset {link.resets} times; "
            f"restarts: {summary(restarts)}",
            6,
            figures,
        )
    finally:
        if pipe is not None:
            for proc in [*pipe.workers, pipe.store]:
                stop(proc)


def drain_with_watchdog(
    pipe: Pipeline, timeout: float, stall: float, rejoin: float = 90
) -> list[str]:
    """Wait until everything is committed; a stage whose lag stays up, unchanged,
    for `stall` seconds has its process restarted, as a liveness probe would.

    Only the stalled stage is restarted, and like a kubelet does: SIGTERM (the
    process leaves its consumer group), SIGKILL if it has not exited after a grace
    period. A restarted stage then gets `rejoin` seconds before it is judged again:
    a replacement rejoins as the same static member at once, but a member whose
    link broke may hold its partitions until its session times out
    (`kafka_session_timeout_ms`). Judging it sooner restarts every replacement
    just before it could commit: a livelock (the store's lag once stayed at 4
    through five restarts, with the clients' old 45-60 s sessions).
    """
    s = pipe.settings
    stages = {"worker": (s.ingest_group, s.events_topic), "store": (s.store_group, s.rows_topic)}
    restarts: list[str] = []
    deadline = time.monotonic() + timeout
    last: dict[str, int | None] = {}
    since = dict.fromkeys(stages, time.monotonic())
    patience = dict.fromkeys(stages, stall)
    lags: dict[str, int | None] = {}
    while time.monotonic() < deadline:
        lags = {name: group_lag(s, group, topic) for name, (group, topic) in stages.items()}
        if all(lag == 0 for lag in lags.values()):
            return restarts
        now = time.monotonic()
        for name, lag in lags.items():
            if lag == 0 or lag != last.get(name, -1):  # drained or moving: healthy
                last[name], since[name], patience[name] = lag, now, stall
            elif now - since[name] > patience[name]:
                restarts.append(f"{name} stalled at lag {lag} for {now - since[name]:.0f}s")
                stop(pipe.store if name == "store" else pipe.workers[0], timeout=15)
                since[name], patience[name] = time.monotonic(), rejoin
        time.sleep(1)
    raise TimeoutError(f"not drained after {timeout:.0f}s (lags {lags}); restarts: {restarts}")


def summary(restarts: list[str]) -> str:
    """'none', or each kind of restart with its count: `worker 0 exited 1 x2, ...`."""
    counts = Counter(restarts)
    return ", ".join(f"{what} x{n}" if n > 1 else what for what, n in counts.items()) or "none"


def rnd_batch(part: int) -> int:
    return (1, 25, 100)[part % 3]
