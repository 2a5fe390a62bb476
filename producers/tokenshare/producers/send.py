"""Send a stream of event dicts (simulated or loaded) with progress."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from tokenshare.console import progress_bar
from tokenshare.producers.kafka_producer import EventProducer, InvalidEvent, validate
from tokenshare.settings import Settings


@dataclass(slots=True)
class SendReport:
    sent: int = 0  # valid events sent
    invalid: int = 0  # invalid events sent raw, one per message, for the dead-letter topic
    acked: int = 0
    failed: int = 0


def send_events(
    settings: Settings,
    events: Iterable[Mapping[str, Any]],
    *,
    total: int | None = None,
    batch: int = 500,
    send_invalid: bool = True,
    label: str = "sending",
) -> SendReport:
    """Validate and send `events`, `batch` per message.

    Invalid events are sent unvalidated, one per message, when `send_invalid`
    (demos and tests of the dead-letter path), else counted and dropped here.
    """
    report = SendReport()
    pending: list[Mapping[str, Any]] = []
    with EventProducer(settings) as producer, progress_bar(label, total) as advance:

        def flush() -> None:
            if batch > 1:
                try:  # the whole message in one validation call: the usual case
                    producer.send_batch(pending)
                    report.sent += len(pending)
                    advance(len(pending))
                    return
                except InvalidEvent:
                    pass  # then find the bad ones one by one
            good: list[Mapping[str, Any]] = []
            for event in pending:
                try:
                    raw = validate(event)
                except InvalidEvent:
                    report.invalid += 1
                    if send_invalid:
                        producer.send_raw(orjson.dumps(event))
                    continue
                report.sent += 1
                if batch <= 1:
                    producer.send(raw, validated=True)
                else:
                    good.append(event)
            producer.send_batch(good, validated=True)
            advance(len(pending))

        for event in events:
            pending.append(event)
            if len(pending) >= max(batch, 1):
                flush()
                pending = []
        if pending:
            flush()
        producer.flush()
        report.acked, report.failed = producer.stats.acked, producer.stats.failed
    return report
