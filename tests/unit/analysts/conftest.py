"""One simulated market for the analyst tests, stored once per test session.

Regions are replaced by spellings of every kind (ISO codes, continent names, cloud
region names) whose continents the tests know, so that no test depends on the
simulator's region names."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from tests.factories import unique
from tokenshare.producers.simulator import SimConfig, simulate
from tokenshare.schema.catalog import Catalog
from tokenshare.schema.wire import encode
from tokenshare.sinks.clickhouse import migrate
from tokenshare.sinks.raw_events import RawEventWriter
from tokenshare.streams.batch import Enricher, SourceMessage

Event = dict[str, Any]

#: Region as sent -> its continent (UN M49; the Caribbean and Central America in
#: North America), written out by hand for the tests.
CONTINENT_OF = {
    "US": "North America", "us-east-1": "North America", "ca-central": "North America",
    "MX": "North America", "eu-west": "Europe", "DE": "Europe", "uk-south": "Europe",
    "europe-west1": "Europe", "ap-southeast": "Asia", "CN": "Asia", "JP": "Asia",
    "asia-east1": "Asia", "me-south-1": "Asia", "sa-east": "South America", "BR": "South America",
    "AU": "Oceania", "australia-southeast1": "Oceania", "ZA": "Africa", "af-south-1": "Africa",
    "Europe": "Europe", "North America": "North America", "mars-1": "unidentified",
}  # fmt: skip


def store_events(ch_client: Client, database: str, events: list[Event]) -> None:
    """Write `events` the way the store does (enriched rows through the writer)."""
    migrate(ch_client, database)
    messages = [
        SourceMessage("events", 0, offset, encode(events[start : start + 500]))
        for offset, start in enumerate(range(0, len(events), 500))
    ]
    rows = Enricher(Catalog.load(), 1 << 22).process(messages).rows
    RawEventWriter(ch_client, database).write(rows)


@pytest.fixture(scope="session")
def simulated_events() -> list[Event]:
    out = list(simulate(SimConfig(events=20_000, seed=11)))
    regions = list(CONTINENT_OF)
    for i, e in enumerate(out):
        e["region"] = regions[(i * 7) % len(regions)]
    return out


@pytest.fixture(scope="session")
def simulated_market(ch_client: Client, simulated_events: list[Event]) -> Iterator[str]:
    """A database holding the simulated events; tests only read it (or add alerts)."""
    database = unique("analysts_")
    store_events(ch_client, database, simulated_events)
    yield database
    ch_client.command(f"DROP DATABASE IF EXISTS {database}")
