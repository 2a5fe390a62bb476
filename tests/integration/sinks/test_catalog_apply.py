"""`catalog apply`: a lab added to the catalog today fixes the stored shares of past
weeks, exactly as a fresh ingest with the new catalog would give them; `catalog gaps`
lists what the stored rows miss."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from tokenshare.producers.simulator import SimConfig, simulate
from tokenshare.schema.catalog import DEFAULT_PATH, Catalog
from tokenshare.schema.wire import encode
from tokenshare.sinks.raw_events import RawEventWriter
from tokenshare.sinks.reenrich import STORED_SQL, apply, plan, stored_slugs
from tokenshare.streams.batch import Enricher, SourceMessage

#: Labs left out of the "old" catalog: two RoW labs and a Chinese one.
REMOVED = ("tngtech", "sarvamai", "nex-agi")

Event = dict[str, Any]


@pytest.fixture(scope="module")
def events() -> list[Event]:
    return list(simulate(SimConfig(events=8_000, seed=5)))


def _catalog_without(tmp_path: Path, authors: tuple[str, ...]) -> Catalog:
    doc = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    doc["version"] = "old"
    for a in authors:
        del doc["authors"][a]
    doc["models"] = {k: v for k, v in doc["models"].items() if k.split("/")[0] not in authors}
    path = tmp_path / "old_catalog.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return Catalog.load(path)


def _store(client: Client, database: str, events: list[Event], catalog: Catalog) -> None:
    messages = [
        SourceMessage("events", 0, offset, encode(events[start : start + 500]))
        for offset, start in enumerate(range(0, len(events), 500))
    ]
    RawEventWriter(client, database).write(Enricher(catalog, 1 << 22).process(messages).rows)


def _rollup(client: Client, database: str) -> dict[tuple[str, str, str], tuple[int, int]]:
    rows = client.query(
        f"SELECT dimension, value, day, sum(tokens), sum(requests) FROM {database}.daily_rollup "
        "GROUP BY dimension, value, day"
    ).result_rows
    return {(str(d), str(v), str(day)): (int(t), int(n)) for d, v, day, t, n in rows}


def _recomputed(client: Client, database: str) -> dict[tuple[str, str, str], tuple[int, int]]:
    """The rollup recomputed from the stored rows as they are now."""
    dims = ("origin_bloc", "origin_country", "author", "weights", "size_class", "reasoning")
    pairs = ", ".join(f"('{d}', {d})" for d in dims)
    rows = client.query(
        f"SELECT dv.1, dv.2, day, sum(total_tokens), count() FROM {database}.raw_events "
        f"ARRAY JOIN [{pairs}, ('model', model_canonical)] AS dv GROUP BY dv.1, dv.2, day"
    ).result_rows
    return {(str(d), str(v), str(day)): (int(t), int(n)) for d, v, day, t, n in rows}


def _segments(client: Client, database: str) -> dict[tuple[str, ...], int]:
    rows = client.query(
        f"SELECT segment_value, value, day, sum(tokens) FROM {database}.segment_rollup "
        "WHERE segment_dimension = 'weights' AND dimension = 'origin_bloc' "
        "GROUP BY segment_value, value, day"
    ).result_rows
    return {(str(s), str(v), str(d)): int(t) for s, v, d, t in rows}


def _tokens(e: Event) -> int:
    return int(e["prompt_tokens"]) + int(e["completion_tokens"])


def test_added_lab_fixes_past_shares_exactly(
    ch_client: Client, migrated: str, events: list[Event], tmp_path: Path
) -> None:
    old, new = _catalog_without(tmp_path, REMOVED), Catalog.load()
    affected = {str(e["model"]) for e in events if str(e["model"]).split("/")[0] in REMOVED}
    assert affected, "the simulated market has traffic from the removed labs"
    _store(ch_client, migrated, events, old)
    before = _rollup(ch_client, migrated)

    # gaps: what the new catalog would change, from the stored rows alone
    stored = stored_slugs(ch_client.query(STORED_SQL.format(db=migrated)).result_rows)
    assert not plan(stored, old).models  # nothing is stale against the catalog it was stored with
    stale = plan(stored, new)
    assert set(stale.models) == affected
    assert stale.tokens == sum(_tokens(e) for e in events if e["model"] in affected)

    report = apply(ch_client, migrated, new)
    assert set(report.plan.models) == affected
    assert {"daily_rollup", "segment_rollup"} <= set(report.rollups)

    # The independent side: plain Python over the events, enriched by the new catalog.
    want_origin: dict[tuple[str, str, str], int] = defaultdict(int)
    want_segment: dict[tuple[str, ...], int] = defaultdict(int)
    for e in events:
        info = new.lookup(str(e["model"]))
        day = str(e["ts"])[:10]
        want_origin[("origin_bloc", info.origin_bloc, day)] += _tokens(e)
        want_segment[(info.weights, info.origin_bloc, day)] += _tokens(e)
    after = _rollup(ch_client, migrated)
    got_origin = {k: t for k, (t, _) in after.items() if k[0] == "origin_bloc"}
    assert got_origin == dict(want_origin)
    assert got_origin != {k: t for k, (t, _) in before.items() if k[0] == "origin_bloc"}
    assert _segments(ch_client, migrated) == dict(want_segment)
    # Every catalog dimension of the rollup equals a recomputation from the rows.
    recomputed = _recomputed(ch_client, migrated)
    assert {k: v for k, v in after.items() if k[0] in {d for d, _, _ in recomputed}} == recomputed
    # Nothing lost or doubled, and each row carries the new catalog's answer.
    rows = ch_client.query(
        f"SELECT model, lab, origin_bloc, weights, size_class, catalog_version "
        f"FROM {migrated}.raw_events"
    ).result_rows
    assert len(rows) == len(events)
    for model, lab, bloc, weights, size, version in rows:
        info = new.lookup(str(model))
        assert (lab, bloc, weights, size) == (
            info.lab,
            info.origin_bloc,
            info.weights,
            info.size_class,
        )
        assert version == (new.version if model in affected else "old")
    assert not apply(ch_client, migrated, new).plan.models  # a second apply has nothing to do
