"""Profile of the worker's hot path: `Enricher.process` then `RowBatch.encode`.

Batched messages of the event set, as the worker gets them from one
`getmany`, profiled once with pyinstrument (cProfile when it is missing).
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from collections.abc import Mapping

from tokenshare.bench.config import TITLES
from tokenshare.bench.env import PARTITIONS, BenchEnv
from tokenshare.bench.report import Figure, Section
from tokenshare.schema.catalog import Catalog
from tokenshare.streams.batch import Enricher, SourceMessage
from tokenshare.streams.ingest import ROWS_PER_MESSAGE

TOP = 25  # lines of the profile kept in RESULTS.md


def hot_path(enricher: Enricher, messages: list[SourceMessage]) -> int:
    result = enricher.process(messages)
    encoded = [chunk.encode() for rows in result.rows for chunk in rows.chunks(ROWS_PER_MESSAGE)]
    return len(encoded)


def measure(env: BenchEnv, done: Mapping[str, Section]) -> Section:
    section = Section("profile", TITLES["profile"])
    sizes = env.sizes
    env.ui.step("profile: the worker's hot path")
    per = sizes.batch
    values = env.events.batched(per)[: max(1, sizes.profile_events // per)]
    events = min(len(env.events), len(values) * per)
    messages = [
        SourceMessage("bench.events", i % PARTITIONS, i // PARTITIONS, v)
        for i, v in enumerate(values)
    ]
    enricher = Enricher(Catalog.load(), 16 * 1024 * 1024)
    hot_path(enricher, messages[:1])  # warm caches (catalog lookups, validators)
    started = time.perf_counter()
    cpu = time.process_time()
    hot_path(enricher, messages)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    section.add(
        "rate", Figure(f"unprofiled, {events:,} events, wall clock", events / wall, "events/s")
    )
    section.add("cpu_rate", Figure("unprofiled, per CPU second", events / cpu, "events/s"))
    try:
        section.text = _pyinstrument(enricher, messages)
        tool = "pyinstrument (wall-clock sampling, 1 ms)"
    except ImportError:
        section.text = _cprofile(enricher, messages)
        tool = "cProfile (cumulative time)"
    section.notes.append(
        f"{tool} over {len(messages)} messages of {per} events, after one warm-up message"
    )
    env.ui.advance()
    return section


def _pyinstrument(enricher: Enricher, messages: list[SourceMessage]) -> str:
    from pyinstrument import Profiler
    from pyinstrument.frame import Frame

    profiler = Profiler(interval=0.001)
    profiler.start()
    hot_path(enricher, messages)
    session = profiler.stop()
    tree = profiler.output_text(unicode=False, color=False, show_all=False)
    own: dict[str, float] = {}

    def walk(frame: Frame) -> None:
        if not frame.is_synthetic:
            key = f"{frame.function}  {frame.file_path_short}:{frame.line_no}"
            own[key] = own.get(key, 0.0) + frame.total_self_time
        for child in frame.children:
            walk(child)

    root = session.root_frame()
    if root is not None:
        walk(root)
    top = sorted(own.items(), key=lambda item: -item[1])[:15]
    return (
        f"{session.duration:.3f} s wall, {session.cpu_time:.3f} s CPU, "
        f"{session.sample_count} samples\n\n"
        "call tree (seconds, inclusive; library internals folded):\n"
        + "\n".join(_frames(tree)[:TOP])
        + "\n\ntop frames by own time (seconds, exclusive; every frame):\n"
        + "\n".join(f"{seconds:6.3f}  {name}" for name, seconds in top)
    )


def _frames(text: str) -> list[str]:
    """The profile's lines from its first frame on (drops pyinstrument's banner)."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    first = next((i for i, line in enumerate(lines) if line.lstrip()[:1].isdigit()), 0)
    return lines[first:]


def _cprofile(enricher: Enricher, messages: list[SourceMessage]) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    hot_path(enricher, messages)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(TOP)
    return out.getvalue()
