"""The worker's and the store's Prometheus endpoints while `tokenshare worker` and
`tokenshare store` run: counters per batch and flush add up to what was sent."""

from __future__ import annotations

import urllib.request
from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

from tests.factories import event
from tests.pipeline import Pipeline
from tokenshare.producers.kafka_producer import EventProducer
from tokenshare.schema.catalog import UNIDENTIFIED, Catalog
from tokenshare.sinks.query import run_query


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_worker_and_store_export_what_they_did(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    docs = [event(i, seed=31) for i in range(2_000)]
    with EventProducer(settings) as producer:
        for start in range(0, len(docs), 100):
            producer.send_batch(docs[start : start + 100])
        producer.send_raw(b"not an event")
    pipeline.wait_drained()

    worker = scrape(f"http://127.0.0.1:{settings.worker_web_port}/metrics")
    assert worker[("tokenshare_events_total", frozenset())] == len(docs)
    assert worker[("tokenshare_dead_letters_total", frozenset())] == 1
    assert worker[("tokenshare_batch_duration_seconds_count", frozenset())] >= 1
    assert worker[("tokenshare_consumer_lag", frozenset())] == 0
    catalog = Catalog.load()
    want: Counter[tuple[str, str, str]] = Counter()
    for d in docs:
        info = catalog.lookup(d["model"])
        model = info.model if info.identified else UNIDENTIFIED
        want[(model, info.origin_bloc, "prompt")] += d["prompt_tokens"]
        want[(model, info.origin_bloc, "completion")] += d["completion_tokens"]
    got: Counter[tuple[str, str, str]] = Counter()
    for (name, labels), value in worker.items():
        if name == "tokenshare_tokens_total":
            ls = dict(labels)
            got[(ls["model"], ls["origin_bloc"], ls["kind"])] += int(value)
    assert got == want
    # The same totals as the table the store wrote.
    stored = run_query(
        settings, f"SELECT sum(total_tokens) FROM {settings.clickhouse_database}.raw_events"
    ).rows[0][0]
    assert sum(got.values()) == stored

    store = scrape(f"http://127.0.0.1:{settings.store_metrics_port}/metrics")
    assert store[("tokenshare_store_rows_total", frozenset({("outcome", "stored")}))] == len(docs)
    flushes = store[
        ("tokenshare_store_flush_duration_seconds_count", frozenset({("topic_kind", "rows")}))
    ]
    assert flushes >= 1
    assert store[("tokenshare_store_freshness_seconds_count", frozenset())] == flushes
