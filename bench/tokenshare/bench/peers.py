"""b. Peer baselines: the two Faust apps, each in its own process, on the same topic.

Both read producer run 1's single-event topic (one event per message, as a
per-event Faust agent expects) from the start, in a fresh consumer group, and
time from their first event to their last. The idiomatic windowed app is slow,
so it gets a slice of the topic; its rate is still comparable.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping

import orjson

from tokenshare.bench.config import TITLES
from tokenshare.bench.env import PARTITIONS, BenchEnv
from tokenshare.bench.report import Section, rate_figure

APPS = {
    "windowed": "tokenshare.bench.faust_windowed",
    "plain": "tokenshare.bench.faust_plain",
}


def run_app(env: BenchEnv, which: str, topic: str, events: int, run: int) -> dict[str, float]:
    """One run of one baseline; returns its result document."""
    name = f"{which}-{run}-{uuid.uuid4().hex[:6]}"
    folder = env.home / "faust" / name
    folder.mkdir(parents=True)
    result = folder / "result.json"
    args = [
        "--bootstrap", env.kafka.bootstrap, "--topic", topic, "--events", str(events),
        "--app-id", f"bench-{name}", "--partitions", str(PARTITIONS),
        "--datadir", str(folder / "data"), "--result", str(result),
    ]  # fmt: skip
    log = env.logs / f"faust-{name}.log"
    proc = env.spawn_module(APPS[which], args, log)
    # Generous: 60 events/s would be 7x slower than the slowest expected rate.
    deadline = time.monotonic() + 120 + events / 60
    try:
        while not result.exists():
            if proc.poll() is not None:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
                raise RuntimeError(f"Faust baseline {which} exited ({proc.returncode}):\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"Faust baseline {which} did not finish {events:,} events")
            time.sleep(0.1)
        doc: dict[str, float] = orjson.loads(result.read_bytes())
        return doc
    finally:
        env.stop(proc, timeout=15)


def measure(env: BenchEnv, done: Mapping[str, Section]) -> Section:
    section = Section("b", TITLES["b"])
    sizes = env.sizes
    topic = env.topic("single", 1).settings.events_topic
    slices = {"windowed": sizes.faust_windowed_events, "plain": sizes.faust_plain_events}
    labels = {
        "windowed": "b1. idiomatic Faust: Record per event, hopping 7-day windowed table by model",
        "plain": "b2. plain Faust agent: raw messages, orjson.loads, dict aggregation",
    }
    startups: list[float] = []
    for which in ("windowed", "plain"):
        runs = []
        for run in range(1, sizes.runs + 1):
            env.ui.step(f"b. Faust {which}, {slices[which]:,} events, run {run}/{sizes.runs}")
            doc = run_app(env, which, topic, slices[which], run)
            runs.append(float(doc["rate"]))
            startups.append(float(doc["startup"]))
            env.ui.advance()
        section.add(which, rate_figure(f"{labels[which]} ({slices[which]:,} events)", runs))
    limit = done.get("a")
    raw_single = limit.value("single") if limit else None
    section.ratio(
        "plain agent / idiomatic windowed app", section.value("plain"), section.value("windowed")
    )
    if raw_single is not None:
        section.ratio(
            "raw limit (single messages) / plain agent", raw_single, section.value("plain")
        )
        section.ratio(
            "raw limit (single messages) / idiomatic windowed app",
            raw_single,
            section.value("windowed"),
        )
    section.notes.append(
        f"each run is a separate process reading one-event messages (EventProducer.send) from "
        f"the start; Faust start-up ({min(startups):.1f}-{max(startups):.1f} s) is not timed"
    )
    return section
