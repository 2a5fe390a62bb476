"""The reliability suite's ledger: what the producer was told, against what is stored.

Invariants checked after every scenario:
  stored rows == acknowledged ids, no id stored twice, no id that was never sent,
  every daily rollup equal to a recomputation from the raw rows,
  one dead letter per invalid input injected (told apart by source topic, partition,
  offset and index: the worker's dead letters are at least once, so a worker killed
  after publishing them and before its commit publishes them again on replay).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import orjson
from kafka import KafkaConsumer

from tokenshare import kafka_clients
from tokenshare.producers.kafka_producer import EventProducer
from tokenshare.schema.dead_letter import DeadLetter
from tokenshare.settings import Settings
from tokenshare.sinks.query import run_query

RECOMPUTED_ROLLUP = """
SELECT dv.1 AS dimension, dv.2 AS value, day, sum(total_tokens), count(), round(sum(cost_usd), 6)
FROM {db}.raw_events
ARRAY JOIN [('origin_bloc', origin_bloc), ('author', author), ('model', model_canonical),
            ('weights', weights), ('provider', provider),
            ('category', ifNull(category, 'unidentified'))] AS dv
GROUP BY dimension, value, day
"""
STREAMED_ROLLUP = """
SELECT dimension, value, day, sum(tokens), sum(requests), round(sum(spend_usd), 6)
FROM {db}.daily_rollup
WHERE dimension IN ('origin_bloc', 'author', 'model', 'weights', 'provider', 'category')
GROUP BY dimension, value, day
"""


@dataclass
class Figures:
    produced: int
    acked: int
    stored: int
    duplicated: int
    lost: int
    unknown: int
    rollup_mismatches: int
    dead_letters: int  #: distinct refused inputs on the dead-letter topic
    invalid_injected: int
    dead_letter_repeats: int = 0  #: extra copies of those, from replays after a crash

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


@dataclass
class Ledger:
    settings: Settings
    sent: set[str] = field(default_factory=set)
    acked: set[str] = field(default_factory=set)
    invalid_injected: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def producer(self, **overrides: Any) -> EventProducer:
        return EventProducer(self.settings, on_ack=self._on_ack, **overrides)

    def _on_ack(self, ids: list[str]) -> None:
        with self._lock:
            self.acked.update(ids)

    def send(self, producer: EventProducer, events: list[dict[str, Any]], batch: int = 50) -> None:
        for start in range(0, len(events), batch):
            chunk = events[start : start + batch]
            self.sent.update(str(e["event_id"]) for e in chunk)
            if batch == 1:
                producer.send(chunk[0])
            else:
                producer.send_batch(chunk)

    def inject_invalid(self, producer: EventProducer, values: list[bytes]) -> None:
        for value in values:
            producer.send_raw(value)
        self.invalid_injected += len(values)

    def figures(self) -> Figures:
        s = self.settings
        db = s.clickhouse_database
        rows = run_query(s, f"SELECT event_id, count() FROM {db}.raw_events GROUP BY event_id").rows
        stored = {str(r[0]): int(r[1]) for r in rows}
        recomputed = _as_set(run_query(s, RECOMPUTED_ROLLUP.format(db=db)).rows)
        streamed = _as_set(run_query(s, STREAMED_ROLLUP.format(db=db)).rows)
        letters = dead_letter_sources(s)
        return Figures(
            produced=len(self.sent),
            acked=len(self.acked),
            stored=sum(stored.values()),
            duplicated=sum(c - 1 for c in stored.values()),
            lost=len(self.acked - stored.keys()),
            unknown=len(stored.keys() - self.sent),
            rollup_mismatches=len(recomputed ^ streamed),
            dead_letters=len(set(letters)),
            invalid_injected=self.invalid_injected,
            dead_letter_repeats=len(letters) - len(set(letters)),
        )

    def check(self) -> Figures:
        f = self.figures()
        assert f.lost == 0, f"lost acknowledged events: {f}"
        assert f.duplicated == 0, f"stored twice: {f}"
        assert f.unknown == 0, f"stored ids never sent: {f}"
        assert f.stored == f.acked, f"stored != acknowledged: {f}"
        assert f.rollup_mismatches == 0, f"rollup differs from raw rows: {f}"
        assert f.dead_letters == f.invalid_injected, f"dead letters != invalid inputs: {f}"
        return f


def _as_set(rows: list[list[Any]]) -> set[tuple[str, ...]]:
    return {tuple(str(v) for v in r) for r in rows}


def dead_letter_sources(settings: Settings) -> list[tuple[str, int, int, int | None]]:
    """Where each message on the dead-letter topic came from, repeats included."""
    consumer = KafkaConsumer(
        settings.dlq_topic,
        bootstrap_servers=settings.kafka_bootstrap,
        **kafka_clients.CONSUMER,
        auto_offset_reset="earliest",
        consumer_timeout_ms=2000,
    )
    try:
        letters = [DeadLetter.read(m.value, m.headers) for m in consumer]
    finally:
        consumer.close()
    return [(d.topic, d.partition, d.offset, d.index) for d in letters]


def read_json(settings: Settings, topic: str) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        **kafka_clients.CONSUMER,
        auto_offset_reset="earliest",
        consumer_timeout_ms=2000,
    )
    try:
        return [orjson.loads(m.value) for m in consumer]
    finally:
        consumer.close()
