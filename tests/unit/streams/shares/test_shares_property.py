"""Property: streamed window totals equal a batch recomputation, whatever the delivery.

Random event streams (out of order in event time, late, duplicated by producer
retries, redelivered by worker crashes and store restarts) go through the same
path as production: wire encoding, the Enricher, the idempotent RawEventWriter
and the ``daily_rollup`` materialized view. The share stage's windows
(``load_day_sums`` + ``series``) must then equal, for every dimension, measure
and window kind:

(a) a SQL recomputation straight from ``raw_events`` (not from the rollup), and
(b) a pure-Python recomputation from the unique input events;

and so must the weekly sums within segments (``where`` filters) and the
counters ratio rules divide (reasoning, cached tokens, tool-call requests),
which ``segment_rollup`` keeps beside the measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.chdb import empty
from tests.factories import event
from tokenshare.schema.catalog import UNIDENTIFIED, Catalog
from tokenshare.schema.vocabulary import DIMENSIONS, MEASURES, SUMS
from tokenshare.schema.wire import encode
from tokenshare.sinks.raw_events import RawEventWriter
from tokenshare.streams.batch import Enricher, SourceMessage
from tokenshare.streams.shares.engine import load_day_sums
from tokenshare.streams.shares.windows import series

CATALOG = Catalog.load()
TOPIC = "events"
BASE = datetime(2026, 9, 1, tzinfo=UTC)  # in the past: event times must not be in the future
SPAN_DAYS = 40
DAY_MS = 86_400_000
MODELS = [
    "deepseek/deepseek-v3.2-20251201",  # dated snapshot of a catalog model
    "deepseek/deepseek-chat",  # alias
    "DeepSeek/DeepSeek-R1:free",  # case and routing variant
    "anthropic/claude-4.5-sonnet-20250929",
    "qwen/qwen3.6-plus-04-02:free",
    "moonshotai/kimi-k2-instruct",
    "google/gemini-2.5-flash",
    "x-ai/grok-4.1-fast",
    "mistralai/mistral-small-3.2-24b-instruct",
    "deepseek/deepseek-v9-unreleased",  # known author, unknown model
    "openrouter/x",
    "newlab/m-1",
    "someone-new/unknown-model-7b",
]
PROVIDERS = ["DeepSeek", "Anthropic", "Google", "Together", "Fireworks"]
CATEGORIES = ["programming", "roleplay", "translation"]
REGIONS = ["us-east", "eu-west", "ap-south"]
LANGUAGES = ["en", "zh", "es", "pt-BR"]
OFFSETS = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]

#: How each dimension reads from raw_events (the rollup's mapping, written out again).
DIMENSION_SQL = {
    "origin_bloc": "origin_bloc",
    "origin_country": "origin_country",
    "author": "author",
    "model": "model_canonical",
    "weights": "weights",
    "size_class": "size_class",
    "reasoning": "reasoning",
    "category": f"coalesce(category, '{UNIDENTIFIED}')",
    "provider": "provider",
    "region": f"coalesce(region, '{UNIDENTIFIED}')",
    "language": f"coalesce(language, '{UNIDENTIFIED}')",
}
MEASURES_SQL = (
    "sum(total_tokens), sum(prompt_tokens), sum(completion_tokens), count(), sum(cost_usd)"
)
assert set(DIMENSION_SQL) == set(DIMENSIONS)

WindowKey = tuple[date, date]  # [start, end)
Windows = dict[WindowKey, dict[str, float]]  # window -> value -> total (non-zero only)


# --- scenarios ------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    events: list[dict[str, Any]]  # the unique input events
    #: partition -> log of messages; each message is a list of indexes into `events`
    logs: dict[int, list[list[int]]]
    #: consumer polls: each a list of (partition, first, end) message positions in a log
    polls: list[list[tuple[int, int, int]]]
    #: store steps over the stream of RowBatches: (restart, rewind, batches written)
    writes: list[tuple[bool, int, int]]


@st.composite
def events(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 120))
    out = []
    for i in range(n):
        day = draw(st.integers(0, SPAN_DAYS - 1))
        ms = draw(st.one_of(st.integers(0, DAY_MS - 1), st.sampled_from([0, 999, DAY_MS - 1])))
        ts = (BASE + timedelta(days=day, milliseconds=ms)).astimezone(
            draw(st.sampled_from(OFFSETS))
        )
        prompt = draw(st.one_of(st.integers(0, 60_000), st.integers(0, 20_000_000)))
        completion = draw(st.integers(0, 8_000))
        doc = event(
            i,
            seed=7,
            event_id=f"ev-{i}",
            ts=ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            model=draw(st.sampled_from(MODELS)),
            provider=draw(st.sampled_from(PROVIDERS)),
            prompt_tokens=prompt,
            completion_tokens=completion,
            reasoning_tokens=min(completion, 5),
            cached_tokens=min(prompt, 3),
            cost_usd=draw(st.integers(0, 50_000_000)) / 1e6,
            category=draw(st.none() | st.sampled_from(CATEGORIES)),
            region=draw(st.none() | st.sampled_from(REGIONS)),
            language=draw(st.none() | st.sampled_from(LANGUAGES)),
        )
        out.append(doc)
    return out


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    evs = draw(events())
    n = len(evs)
    order = draw(st.permutations(range(n)))  # log order is not event-time order
    messages: list[list[int]] = []
    pos = 0
    while pos < n:
        size = draw(st.integers(1, 5))
        messages.append(list(order[pos : pos + size]))
        pos += size
    # Producer retries / a file replayed twice: the same events again as new messages,
    # anywhere later in the log, possibly on another partition, even twice in one message.
    for _ in range(draw(st.integers(0, 8))):
        again = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=5))
        messages.insert(draw(st.integers(0, len(messages))), again)
    partitions = draw(st.integers(1, 4))
    logs: dict[int, list[list[int]]] = {p: [] for p in range(partitions)}
    for message in messages:
        logs[draw(st.integers(0, partitions - 1))].append(message)

    # Per partition, what the consumers read, in order: chunks of messages, and after a
    # worker crash or rebalance a restart from an earlier position (the last commit).
    chunks: dict[int, list[tuple[int, int, int]]] = {}
    for p, log in logs.items():
        chunks[p] = []
        pos, rewinds = 0, draw(st.integers(0, 3))
        while pos < len(log):
            end = min(pos + draw(st.integers(1, 4)), len(log))
            chunks[p].append((p, pos, end))
            if rewinds and draw(st.booleans()):
                rewinds -= 1
                pos = draw(st.integers(0, end))
            else:
                pos = end
    # Polls interleave the partitions; one poll reads at most one chunk per partition.
    polls: list[list[tuple[int, int, int]]] = []
    while any(chunks.values()):
        ready = sorted(p for p, c in chunks.items() if c)
        picked = draw(st.lists(st.sampled_from(ready), min_size=1, unique=True))
        polls.append([chunks[p].pop(0) for p in picked])

    # The store writes the RowBatches in groups; sometimes it restarts (fresh writer,
    # marks loaded from the table) and the rows topic redelivers what it had not committed.
    total = sum(len(poll) for poll in polls)
    writes: list[tuple[bool, int, int]] = []
    pos, restarts = 0, draw(st.integers(0, 3))
    while pos < total:
        restart = bool(restarts) and pos > 0 and draw(st.booleans())
        rewind = 0
        if restart:
            restarts -= 1
            rewind = draw(st.integers(0, min(pos, 3)))
        size = draw(st.integers(1, 4))
        writes.append((restart, rewind, size))
        pos = min(pos - rewind + size, total)
    return Scenario(evs, logs, polls, writes)


# --- expectations ---------------------------------------------------------------------


def iso_week(day: date) -> WindowKey:
    monday = day - timedelta(days=day.weekday())
    return monday, monday + timedelta(days=7)


def rolling(end_day: date) -> WindowKey:
    """The 7-day window that ends with (and includes) `end_day`."""
    return end_day - timedelta(days=6), end_day + timedelta(days=1)


def add(
    out: dict[tuple[str, str, str], Windows],
    dimension: str,
    kind: str,
    window: WindowKey,
    value: str,
    measures: Any,
) -> None:
    for measure, amount in zip(MEASURES, measures, strict=True):
        cell = out.setdefault((dimension, measure, kind), {}).setdefault(window, {})
        cell[value] = cell.get(value, 0) + amount


def nonzero(windows: Windows) -> Windows:
    """What series() reports: values with a non-zero total, windows with any value."""
    kept = {w: {v: t for v, t in totals.items() if t} for w, totals in windows.items()}
    return {w: totals for w, totals in kept.items() if totals}


def from_sql(client: Client, db: str) -> dict[tuple[str, str, str], Windows]:
    """Window totals summed in SQL straight from raw_events."""
    out: dict[tuple[str, str, str], Windows] = {}
    last_day = f"(SELECT max(day) FROM {db}.raw_events)"
    for dimension, expr in DIMENSION_SQL.items():
        weeks = client.query(
            f"SELECT toString({expr}) AS value, toMonday(day) AS start, {MEASURES_SQL} "
            f"FROM {db}.raw_events GROUP BY value, start"
        ).result_rows
        for value, start, *measures in weeks:
            add(out, dimension, "iso_week", (start, start + timedelta(days=7)), value, measures)
        # Each row counts in the rolling windows ending on its day and the 6 days after,
        # as long as that end day has data (the last window ends on the last data day).
        days = client.query(
            f"SELECT toString({expr}) AS value, addDays(day, k) AS end_day, {MEASURES_SQL} "
            f"FROM {db}.raw_events ARRAY JOIN range(7) AS k "
            f"WHERE end_day <= {last_day} GROUP BY value, end_day"
        ).result_rows
        for value, end_day, *measures in days:
            add(out, dimension, "rolling_7d", rolling(end_day), value, measures)
    return {key: nonzero(w) for key, w in out.items()}


def from_events(evs: list[dict[str, Any]]) -> dict[tuple[str, str, str], Windows]:
    """Window totals recomputed in Python from the unique input events."""
    out: dict[tuple[str, str, str], Windows] = {}
    days = [datetime.fromisoformat(e["ts"]).astimezone(UTC).date() for e in evs]
    last = max(days)
    for e, day in zip(evs, days, strict=True):
        values = enriched(e)
        measures = sums_of(e)[: len(MEASURES)]
        for dimension, value in values.items():
            add(out, dimension, "iso_week", iso_week(day), value, measures)
            for k in range(7):
                end_day = day + timedelta(days=k)
                if end_day <= last:
                    add(out, dimension, "rolling_7d", rolling(end_day), value, measures)
    return {key: nonzero(w) for key, w in out.items()}


def enriched(e: dict[str, Any]) -> dict[str, str]:
    """Every dimension's value of one event, as the worker enriches it (recomputed)."""
    info = CATALOG.lookup(e["model"])
    return {
        "origin_bloc": info.origin_bloc,
        "origin_country": info.origin_country,
        "author": info.author,
        "model": info.model,
        "weights": info.weights,
        "size_class": info.size_class,
        "reasoning": info.reasoning,
        "category": e["category"] or UNIDENTIFIED,
        "provider": e["provider"],
        "region": e["region"] or UNIDENTIFIED,
        "language": e["language"] or UNIDENTIFIED,
    }


def sums_of(e: dict[str, Any]) -> tuple[float, ...]:
    """One event's amount of every sum, in SUMS order (the measures first)."""
    return (
        e["prompt_tokens"] + e["completion_tokens"],
        e["prompt_tokens"],
        e["completion_tokens"],
        1,
        e["cost_usd"],
        e["reasoning_tokens"],
        e["cached_tokens"],
        1 if e["tool_calls"] else 0,
    )


def segment_weeks(
    evs: list[dict[str, Any]], segment: tuple[str, str] | None
) -> dict[tuple[str, str], Windows]:
    """Weekly totals of every sum (measures and counters) by (dimension, sum), recomputed in
    Python from the events whose `segment` dimension has its value (None: all events)."""
    out: dict[tuple[str, str], Windows] = {}
    for e in evs:
        values = enriched(e)
        if segment is not None and values[segment[0]] != segment[1]:
            continue
        week = iso_week(datetime.fromisoformat(e["ts"]).astimezone(UTC).date())
        sums = sums_of(e)
        for dimension, value in values.items():
            for name, amount in zip(SUMS, sums, strict=True):
                cell = out.setdefault((dimension, name), {}).setdefault(week, {})
                cell[value] = cell.get(value, 0) + amount
    return {key: nonzero(w) for key, w in out.items()}


def differences(what: str, measure: str, got: Windows, want: Windows) -> list[str]:
    """Human-readable differences between streamed and expected window totals."""
    problems = []
    for window in sorted(got.keys() | want.keys()):
        label = f"{what} window {window[0]}..{window[1]}"
        if window not in want:
            problems.append(f"{label}: streamed {got[window]}, expected no window")
            continue
        if window not in got:
            problems.append(f"{label}: streamed no window, expected {want[window]}")
            continue
        g, w = got[window], want[window]
        if g.keys() != w.keys():
            problems.append(f"{label}: values {sorted(g)} != expected {sorted(w)}")
            continue
        for value in sorted(g):
            if measure == "spend_usd":
                same = g[value] == pytest.approx(w[value], rel=1e-9, abs=1e-9)
            else:
                same = g[value] == w[value]
            if not same:
                problems.append(f"{label} value {value!r}: streamed {g[value]!r} != {w[value]!r}")
    return problems


# --- the property ---------------------------------------------------------------------


def run(client: Client, db: str, sc: Scenario) -> None:
    """Deliver the scenario's stream into `db`, migrated and empty, as workers and store would."""
    values = {
        p: [encode([sc.events[i] for i in message]) for message in log]
        for p, log in sc.logs.items()
    }
    enricher = Enricher(CATALOG, 1 << 20)
    stream = []
    for poll in sc.polls:
        messages = [
            # offsets grow with gaps (as after transaction markers or compaction)
            SourceMessage(TOPIC, p, 3 * i + 1, values[p][i])
            for p, first, end in poll
            for i in range(first, end)
        ]
        result = enricher.process(messages)
        assert not result.dead_letters, result.dead_letters
        stream.extend(result.rows)
    writer = RawEventWriter(client, db)
    pos = 0
    for restart, rewind, size in sc.writes:
        if restart:
            writer = RawEventWriter(client, db)
            writer.load_marks()
            pos -= rewind
        writer.write(stream[pos : pos + size])
        pos = min(pos + size, len(stream))
    assert pos == len(stream)


@settings(
    # An example costs a second of engine work: an eighth of the profile's (25 under `make test`).
    max_examples=settings.default.max_examples // 8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sc=scenarios())
def test_streamed_windows_equal_batch_recomputation(
    ch_client: Client, migrated: str, sc: Scenario
) -> None:
    db = migrated
    empty(ch_client, db)  # each example starts from an empty database, not the last one's rows
    run(ch_client, db, sc)
    n = len(sc.events)
    stored = ch_client.query(
        f"SELECT count(), uniqExact(event_id) FROM {db}.raw_events"
    ).result_rows[0]
    assert tuple(stored) == (n, n), f"raw_events (count, unique ids) {stored}, expected {n}"

    def query(sql: str) -> list[list[Any]]:
        return [list(row) for row in ch_client.query(sql).result_rows]

    sums = load_day_sums(query, db)
    batch = from_sql(ch_client, db)
    source = from_events(sc.events)
    problems: list[str] = []
    for dimension in DIMENSIONS:
        for measure in MEASURES:
            for kind in ("iso_week", "rolling_7d"):
                streamed = {
                    (ws.window.start, ws.window.end): ws.totals
                    for ws in series(sums, dimension, measure, kind, None)
                }
                key = (dimension, measure, kind)
                what = f"{dimension}/{measure}/{kind}"
                problems += differences(f"{what} vs raw_events SQL", measure, streamed, batch[key])
                problems += differences(f"{what} vs input events", measure, streamed, source[key])
    for segment in (None, ("weights", "open"), ("origin_bloc", UNIDENTIFIED)):
        seg_key = "" if segment is None else f"{segment[0]}={segment[1]}"
        want_weeks = segment_weeks(sc.events, segment)
        for dimension in DIMENSIONS:
            for name in SUMS:
                streamed = {
                    (ws.window.start, ws.window.end): ws.totals
                    for ws in series(sums, dimension, name, "iso_week", None, seg_key)
                }
                want = want_weeks.get((dimension, name), {})
                what = f"{dimension}/{name}/iso_week [{seg_key or 'all'}] vs input events"
                problems += differences(what, name, streamed, want)
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:40])
