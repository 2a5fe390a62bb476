"""End to end on the real broker and embedded ClickHouse: producer -> Kafka ->
worker -> rows topic -> store -> ClickHouse, with bad input on the side."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import orjson
from kafka import KafkaConsumer

from tests.factories import bad_inputs, event
from tests.pipeline import Pipeline
from tokenshare import kafka_clients
from tokenshare.processes import settings_env, stop, wait_until
from tokenshare.producers.kafka_producer import EventProducer
from tokenshare.settings import Settings
from tokenshare.sinks.query import run_query

N = 3_000


def produce(settings: Settings, valid: list[dict[str, object]]) -> int:
    """Valid events batched and single, bad ones raw, and one array with a bad element.
    Returns how many dead letters to expect."""
    bad = bad_inputs()
    with EventProducer(settings) as producer:
        for start in range(0, N - 200, 100):
            producer.send_batch(valid[start : start + 100])
        for doc in valid[N - 200 : N - 1]:
            producer.send(doc)
        # The last valid event travels in an array beside an invalid one.
        mixed = [valid[N - 1], {**valid[0], "event_id": "bad-in-array", "prompt_tokens": -1}]
        producer.send_raw(orjson.dumps(mixed))
        for _, value in bad:
            producer.send_raw(value)
        assert producer.stats.failed == 0
    return len(bad) + 1


def stored_ids(settings: Settings) -> list[str]:
    db = settings.clickhouse_database
    result = run_query(settings, f"SELECT event_id FROM {db}.raw_events")
    return [r[0] for r in result.rows]


def dead_letters(settings: Settings) -> list[tuple[bytes, dict[str, bytes]]]:
    consumer = KafkaConsumer(
        settings.dlq_topic,
        bootstrap_servers=settings.kafka_bootstrap,
        **kafka_clients.CONSUMER,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    try:
        return [(m.value, dict(m.headers)) for m in consumer]
    finally:
        consumer.close()


def test_valid_events_stored_once_invalid_dead_lettered(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    valid = [event(i, seed=1) for i in range(N)]
    expected_dead = produce(settings, valid)
    pipeline.wait_drained()

    ids = stored_ids(settings)
    assert len(ids) == N, pipeline.logs()
    assert set(ids) == {str(e["event_id"]) for e in valid}

    letters = dead_letters(settings)
    assert len(letters) == expected_dead
    originals = {value for value, _ in letters}
    for what, value in bad_inputs():
        assert value in originals, f"{what} missing from the dead-letter topic"
    for value, headers in letters:
        assert headers["error"], value
        assert headers["source.topic"] == settings.events_topic.encode()
        assert int(headers["source.offset"]) >= 0
    in_array = [h for v, h in letters if b"bad-in-array" in v]
    assert in_array and in_array[0]["source.index"] == b"1"
    assert b"prompt_tokens" in in_array[0]["error"]

    # Replaying the same events adds no rows; the bad ones are refused again.
    produce(settings, valid)
    pipeline.wait_drained()
    assert len(stored_ids(settings)) == N
    assert len(dead_letters(settings)) == 2 * expected_dead

    db = settings.clickhouse_database
    totals = run_query(
        settings,
        f"SELECT sum(prompt_tokens), sum(completion_tokens), countIf(NOT identified), "
        f"sumIf(total_tokens, origin_bloc = 'China') FROM {db}.raw_events",
    ).rows[0]
    assert totals[0] == sum(int(str(e["prompt_tokens"])) for e in valid)
    assert totals[1] == sum(int(str(e["completion_tokens"])) for e in valid)
    # Unknown labs are stored and counted as unidentified, never dropped.
    unknown = sum(1 for e in valid if str(e["model"]).startswith(("openrouter/", "someone-new/")))
    assert totals[2] == unknown
    china = sum(
        int(str(e["prompt_tokens"])) + int(str(e["completion_tokens"]))
        for e in valid
        if str(e["model"]).startswith("deepseek/")
    )
    assert totals[3] == china


def cli(settings: Settings, *args: str, stdin: bytes | None = None) -> str:
    """Run the `tokenshare` command as an operator would."""
    result = subprocess.run(
        [sys.executable, "-m", "tokenshare", *args],
        input=stdin,
        env=settings_env(settings),
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def test_replay_from_stdin_and_sql_while_the_store_runs(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    docs = [event(i, seed=2) for i in range(500)]
    lines = [orjson.dumps(d) for d in docs]
    lines.insert(100, b'{"event_id": "broken", "prompt_tokens": "many"}')  # refused, reported
    cli(settings, "replay", "-", "--batch", "50", stdin=b"\n".join(lines) + b"\n")
    pipeline.wait_drained()

    db = settings.clickhouse_database
    out = cli(
        settings,
        "sql",
        f"SELECT count() AS n, uniqExact(event_id) AS ids FROM {db}.raw_events",
        "--format",
        "json",
    )
    assert orjson.loads(out) == [{"n": 500, "ids": 500}]
    csv_out = cli(
        settings,
        "sql",
        f"SELECT origin_bloc, count() FROM {db}.raw_events GROUP BY 1 ORDER BY 1",
        "--format",
        "csv",
    )
    by_bloc = dict(line.split(",") for line in csv_out.strip().splitlines()[1:])
    assert sum(int(v) for v in by_bloc.values()) == 500
    assert "unidentified" in by_bloc  # openrouter/ and unknown labs are kept, not dropped

    # The query path is read-only, also while the store writes.
    refused = subprocess.run(
        [sys.executable, "-m", "tokenshare", "sql", f"DROP TABLE {db}.raw_events"],
        env=settings_env(settings),
        capture_output=True,
        timeout=120,
    )
    assert refused.returncode == 1
    assert b"readonly" in refused.stderr.lower()
    assert orjson.loads(
        cli(settings, "sql", f"SELECT count() AS n FROM {db}.raw_events", "--format", "json")
    ) == [{"n": 500}]


def test_workers_join_and_leave_without_loss_or_duplicates(pipeline: Pipeline) -> None:
    """Partitions move between workers (embedded store: still one owner)."""
    settings = pipeline.settings
    docs = [event(i, seed=3) for i in range(4_000)]
    second = pipeline.add_worker()
    with EventProducer(settings) as producer:
        for doc in docs[:2_000]:
            producer.send(doc)
    pipeline.wait_drained()
    stop(pipeline.workers[0])  # the first worker leaves; the second takes every partition
    pipeline.workers.remove(pipeline.workers[0])
    with EventProducer(settings) as producer:
        for start in range(2_000, 4_000, 40):
            producer.send_batch(docs[start : start + 40])
    pipeline.wait_drained()
    assert second.poll() is None
    db = settings.clickhouse_database
    out = cli(
        settings,
        "sql",
        f"SELECT count(), uniqExact(event_id) FROM {db}.raw_events",
        "--format",
        "csv",
    )
    assert out.strip().splitlines()[1] == "4000,4000"


def test_queries_answer_while_the_worker_ingests(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    # Ingest must be under way before the clock starts: a worker takes seconds to start.
    wait_until(
        lambda: _ready(f"http://127.0.0.1:{settings.worker_web_port}/readyz"),
        120,
        "the worker to be ready",
    )
    docs = [event(i, seed=4) for i in range(20_000)]
    sender = threading.Thread(target=lambda: produce_slowly(settings, docs))
    sender.start()
    db = settings.clickhouse_database
    seen: list[int] = []
    while sender.is_alive():
        out = cli(settings, "sql", f"SELECT count() AS n FROM {db}.raw_events", "--format", "json")
        seen.append(orjson.loads(out)[0]["n"])
    sender.join()
    pipeline.wait_drained()
    final = orjson.loads(
        cli(settings, "sql", f"SELECT count() AS n FROM {db}.raw_events", "--format", "json")
    )[0]["n"]
    assert seen == sorted(seen) and final == len(docs)
    assert any(0 < n < len(docs) for n in seen), f"no query landed mid-ingest: {seen}"


def produce_slowly(settings: Settings, docs: list[dict[str, object]]) -> None:
    """About 20 s of traffic: long enough for several queries, even on a busy machine."""
    with EventProducer(settings) as producer:
        for start in range(0, len(docs), 200):
            producer.send_batch(docs[start : start + 200])
            producer.flush()
            time.sleep(0.2)


def test_doctor_and_health_endpoints(pipeline: Pipeline) -> None:
    import urllib.request

    from tokenshare.sinks.owner import data_path_of, read_owner

    settings = pipeline.settings
    wait_until(
        lambda: _ready(f"http://127.0.0.1:{settings.worker_web_port}/readyz"),
        60,
        "the worker to be ready",
    )
    owner = read_owner(data_path_of(settings.dsn))
    assert owner is not None and owner.query_url is not None
    assert _ready(f"{owner.query_url}/readyz")
    with urllib.request.urlopen(f"{owner.query_url}/healthz", timeout=5) as reply:
        assert reply.status == 200
    out = cli(settings, "doctor")  # exit code 0 asserted by cli()
    for check in ("broker", "schema", "worker", "store", f"topic {settings.events_topic}"):
        line = next(x for x in out.splitlines() if f" {check} " in x)
        assert "✓" in line, line


def _ready(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False
