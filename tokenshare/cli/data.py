"""Commands that put events on Kafka: simulate, replay."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from tokenshare.cli.context import Context, console, fail
from tokenshare.console import progress_bar

batch_option = click.option(
    "--batch",
    default=500,
    show_default=True,
    help="Events per Kafka message (1 sends each event alone).",
)


@click.command()
@click.option("--events", default=100_000, show_default=True, help="Events to generate.")
@click.option("--seed", default=7, show_default=True, help="Same seed, same events.")
@click.option(
    "--invalid-ratio",
    default=0.0,
    show_default=True,
    help="Fraction of deliberately invalid events (to exercise the dead-letter topic).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Write JSONL here instead of sending to Kafka ('-' for stdout).",
)
@batch_option
@click.pass_obj
def simulate(
    ctx: Context, events: int, seed: int, invalid_ratio: float, out: Path | None, batch: int
) -> None:
    """Generate market traffic that follows real weekly per-model volumes
    (OpenRouter top models, Nov 2025 - May 2026), scaled to --events."""
    from tokenshare.producers.simulator import SimConfig
    from tokenshare.producers.simulator import simulate as generate

    stream = generate(SimConfig(events=events, seed=seed, invalid_ratio=invalid_ratio))
    if out is not None:
        sink = sys.stdout.buffer if str(out) == "-" else out.open("wb")
        with progress_bar("generating", events) as advance:
            for event in stream:
                sink.write(orjson.dumps(event) + b"\n")
                advance(1)
        if sink is not sys.stdout.buffer:
            sink.close()
        return
    from tokenshare.gc_policy import tune_for_throughput
    from tokenshare.producers.send import send_events
    from tokenshare.streams.topics import ensure_topics

    settings = ctx.settings()
    ensure_topics(settings)  # else the first send waits a minute for a missing topic
    tune_for_throughput()
    report = send_events(settings, stream, total=events, batch=batch)
    console.print(
        f"sent {report.sent:,} events, {report.invalid:,} invalid sent raw "
        f"for the dead-letter topic, acked {report.acked:,}"
    )


@click.command()
@click.argument("source", type=click.Path(allow_dash=True, path_type=Path))
@batch_option
@click.pass_obj
def replay(ctx: Context, source: Path, batch: int) -> None:
    """Validate and send events from a JSONL file (or - for stdin).

    Invalid lines are reported with their line number and skipped.
    """
    from kafka.errors import KafkaError

    from tokenshare.gc_policy import tune_for_throughput
    from tokenshare.producers.kafka_producer import EventProducer
    from tokenshare.producers.replay import replay as run_replay
    from tokenshare.streams.topics import ensure_topics

    settings = ctx.settings()
    if str(source) != "-" and not source.exists():
        fail(f"{source} does not exist", "give a JSONL file of events, or - to read stdin")
    try:
        producer = EventProducer(settings)
    except KafkaError as exc:
        fail(
            f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}",
            "start the local broker with `tokenshare stack up` or pass --bootstrap",
        )
    stream = sys.stdin.buffer if str(source) == "-" else source.open("rb")
    ensure_topics(settings)  # else the first send waits a minute for a missing topic
    tune_for_throughput()
    with producer, progress_bar("replaying", None) as advance:
        report = run_replay(stream, producer, batch=batch, progress=advance)
    console.print(
        f"{report.sent:,} sent, {report.invalid:,} invalid of {report.lines:,} lines; "
        f"acked {producer.stats.acked:,}"
    )
    for problem in report.problems:
        console.print(f"  [red]{problem}[/]")
    if producer.stats.failed:
        fail(
            f"{producer.stats.failed} events were not acknowledged: {producer.stats.errors[:3]}",
            "check the broker (`tokenshare stack status`) and replay again: "
            "repeats are stored once",
        )


@click.command("schema")
def export_schema() -> None:
    """Write the JSON Schemas of events, alerts and share snapshots into schema/."""
    from tokenshare.schema.jsonschema import export

    for path in export():
        console.print(f"wrote {path}")
