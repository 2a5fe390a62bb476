"""How big each measure is: the full run (`make bench`) and the CI smoke run.

The full sizes keep `make bench` around 20 minutes on a 2-core machine: every
throughput run (tokenshare, the peers, the floors, the raw loop) reads the
same 200k events, batched and one per message, and the memory measure stops
at the time budget if the machine cannot reach 5M events in time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

#: The topic number of the extra, untimed run that py-spy samples (timed runs are 1..runs).
PROFILED_RUN = 0

#: Every measure, in the order they run (`--only` picks a subset).
MEASURES: tuple[str, ...] = ("d", "a", "floor", "b", "c", "f", "g", "e", "shares", "profile")

TITLES: dict[str, str] = {
    "a": "a. The limit: raw aiokafka + orjson + dict aggregation",
    "floor": "floor. Consume + insert_arrow, one process: the floor for storing these rows",
    "b": "b. Peers: sentry-arroyo and Quix Streams doing the same job",
    "c": "c. tokenshare worker, full path (worker + store into ClickHouse)",
    "d": "d. Producers (kafka-python, EventProducer)",
    "e": "e. ClickHouse sink alone (embedded chDB)",
    "f": "f. Freshness: send to visible in ClickHouse at a fixed load",
    "g": "g. Memory: peak RSS of worker and store",
    "shares": "shares. The share stage: cost of one tick (day sums read + rules) at 1x and 4x",
    "profile": "Profile of the worker's hot path (Enricher.process + RowBatch.encode)",
}


@dataclass(frozen=True, slots=True)
class Sizes:
    runs: int = 3  # throughput figures are medians of this many runs
    seed: int = 11
    events: int = 200_000  # the event set; batched throughput runs use all of it
    batch: int = 500  # events per message in batched runs
    single_events: int = 200_000  # single-event topics: the first events of the set
    sink_flush_rows: int = 50_000  # rows per RawEventWriter.write / direct insert / peer insert
    fresh_rate: int = 20_000  # offered load of the freshness run, events/s
    fresh_seconds: float = 20.0
    fresh_batch: int = 100
    markers_per_s: int = 10
    memory_checkpoints: tuple[int, int] = (1_000_000, 5_000_000)
    profile_events: int = 50_000
    #: Whole run, from start to RESULTS.md; the memory measure yields to it.
    budget_s: float = 25 * 60.0
    #: Kept for what runs after the memory measure (sink, profile, report).
    reserve_s: float = 75.0
    #: The memory measure runs at least this long however much of the budget is left
    #: (a slow run once left it none: 0 events stored, the RSS targets unjudged).
    memory_min_s: float = 420.0

    def of_kind(self, kind: str) -> tuple[int, str]:
        """Events a run of `kind` ("batched" or "single") reads, and how they are packed."""
        if kind == "batched":
            return self.events, f"{self.batch} events per message"
        return self.single_events, "one event per message"


FULL = Sizes()

SMOKE = Sizes(
    runs=1,
    events=4_000,
    single_events=2_000,
    sink_flush_rows=2_000,
    fresh_rate=2_000,
    fresh_seconds=3.0,
    markers_per_s=5,
    memory_checkpoints=(10_000, 30_000),
    profile_events=2_000,
    budget_s=480.0,
    reserve_s=15.0,
    memory_min_s=20.0,
)


def sizes_for(smoke: bool, fresh_rate: int | None = None) -> Sizes:
    base = SMOKE if smoke else FULL
    return replace(base, fresh_rate=fresh_rate) if fresh_rate else base


def parse_only(only: str | None) -> list[str]:
    """The measures to run, in the canonical order; ValueError names unknown ones."""
    if not only:
        return list(MEASURES)
    wanted = {part.strip() for part in only.split(",") if part.strip()}
    unknown = wanted - set(MEASURES)
    if unknown:
        raise ValueError(
            f"unknown measure(s) {', '.join(sorted(unknown))}; choose from {', '.join(MEASURES)}"
        )
    return [m for m in MEASURES if m in wanted]
