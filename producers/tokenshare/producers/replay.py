"""Replay events from a JSONL file (or stdin) onto the events topic."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from tokenshare.producers.kafka_producer import EventProducer, InvalidEvent, validate


@dataclass(slots=True)
class ReplayReport:
    lines: int = 0
    sent: int = 0
    invalid: int = 0
    problems: list[str] = field(default_factory=list)  # first few, with line numbers


def read_jsonl(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of every non-blank line."""
    for number, line in enumerate(stream, start=1):
        line = line.strip()
        if line:
            yield number, line


def replay(
    stream: IO[bytes], producer: EventProducer, *, batch: int = 500, progress: Any = None
) -> ReplayReport:
    """Validate each line and send valid events, `batch` per message (1: one per message).

    Invalid lines are reported with their line number and skipped: one bad line
    never stops a replay.
    """
    report = ReplayReport()
    pending: list[Any] = []
    for number, line in read_jsonl(stream):
        report.lines += 1
        try:
            raw = validate(line)
        except InvalidEvent as exc:
            report.invalid += 1
            if len(report.problems) < 20:
                report.problems.append(f"line {number}: {exc}")
            continue
        if batch <= 1:
            producer.send(raw, validated=True)
        else:
            pending.append(orjson.loads(raw))
            if len(pending) >= batch:
                producer.send_batch(pending, validated=True)
                pending = []
        report.sent += 1
        if progress is not None:
            progress(1)
    if pending:
        producer.send_batch(pending, validated=True)
    producer.flush()
    return report
