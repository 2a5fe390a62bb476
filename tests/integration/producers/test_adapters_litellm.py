"""The LiteLLM callback against the real broker: what LiteLLM reports lands on the
events topic, every counted call once."""

from __future__ import annotations

import orjson
from kafka import KafkaConsumer

from tests.samples import LITELLM_CALLS, LITELLM_COUNTED
from tokenshare import kafka_clients
from tokenshare.producers.adapters.litellm import litellm_callback
from tokenshare.settings import Settings


def test_events_reach_the_events_topic(settings: Settings) -> None:
    callback = litellm_callback(settings, batch_size=2, flush_interval_s=0.1)
    for c in LITELLM_CALLS:
        callback.log_success_event(c["kwargs"], None, None, None)
    assert callback.flush(timeout=30), callback.stats
    callback.close()
    assert callback.stats.acked == len(LITELLM_COUNTED) and callback.stats.errors == 0

    consumer = KafkaConsumer(
        settings.events_topic,
        bootstrap_servers=settings.kafka_bootstrap,
        **kafka_clients.CONSUMER,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    try:
        values = [orjson.loads(m.value) for m in consumer]
    finally:
        consumer.close()
    sent = [e["event_id"] for value in values for e in value]
    assert sorted(sent) == sorted(
        c["kwargs"]["standard_logging_object"]["id"] for c in LITELLM_COUNTED
    )
