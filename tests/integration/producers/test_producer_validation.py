"""The producer's send path against the real broker: valid events batched, invalid
ones alone (validation itself: tests/unit/producers/test_producer_validation.py)."""

from __future__ import annotations

import orjson
from kafka import KafkaConsumer

from tests.factories import event
from tokenshare import kafka_clients
from tokenshare.producers.send import send_events
from tokenshare.settings import Settings


def test_send_events_batches_valid_events_and_sends_invalid_ones_alone(settings: Settings) -> None:
    """The demo's and `tokenshare simulate`'s path, against the real broker: every
    valid event in a 500-event array (or with the good ones of a chunk that held a
    bad one), every invalid one raw in its own message."""
    docs = [event(i) for i in range(1_200)]
    bad = {7, 640, 641, 1_199}
    for i in bad:
        docs[i] = {**docs[i], "prompt_tokens": -5}
    report = send_events(settings, docs, total=len(docs), batch=500)
    assert (report.sent, report.invalid, report.acked, report.failed) == (1_196, 4, 1_196, 0)
    consumer = KafkaConsumer(
        settings.events_topic,
        bootstrap_servers=settings.kafka_bootstrap,
        **kafka_clients.CONSUMER,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3_000,
    )
    valid: list[str] = []
    invalid: list[str] = []
    for record in consumer:
        value = orjson.loads(record.value)
        if isinstance(value, list):
            valid += [e["event_id"] for e in value]
        else:
            invalid.append(value["event_id"])
    consumer.close()
    assert sorted(invalid) == sorted(str(docs[i]["event_id"]) for i in bad)
    assert sorted(valid) == sorted(str(d["event_id"]) for i, d in enumerate(docs) if i not in bad)
