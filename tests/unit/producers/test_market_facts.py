"""A replay of the simulated market tells the reports' story, fact by fact.

Prints ``fact | report figure | replay figure | tolerance`` for every modelled
fact (the README's table is this output) and fails on any fact out of tolerance.
The measures are computed here from the events themselves, through the catalog.
"""

from __future__ import annotations

import pytest

from tokenshare.producers.market_facts import FactResult, facts, measure, table
from tokenshare.producers.simulator import SimConfig, simulate

#: The demo replays 300,000 events; 100,000 tell the same story in a fraction of the time.
EVENTS = 100_000


@pytest.fixture(scope="module")
def results() -> list[FactResult]:
    return facts(measure(simulate(SimConfig(events=EVENTS, seed=7))))


def test_every_fact_is_within_tolerance(results: list[FactResult]) -> None:
    print("\n" + table(results))
    assert len(results) >= 30
    bad = [
        f"{r.fact}: {r.replay} (want {r.tolerance}, report {r.report})" for r in results if not r.ok
    ]
    assert not bad, "\n".join(bad)


def test_the_crossover_week_is_the_real_one(results: list[FactResult]) -> None:
    crossover = next(r for r in results if r.fact == "first week China > US")
    assert crossover.replay == "2026-W07"


def test_the_story_does_not_depend_on_the_seed() -> None:
    results = facts(measure(simulate(SimConfig(events=30_000, seed=11))))
    core = {"first week China > US", "lead changes after the crossover",
            "reasoning share of tokens, last weeks", "English share of tokens"}  # fmt: skip
    assert [r.fact for r in results if r.fact in core and r.ok] == [
        r.fact for r in results if r.fact in core
    ]
    assert len([r for r in results if r.fact in core]) == len(core)
