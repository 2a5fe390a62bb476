"""The bench's arithmetic: CPU from /proc, CPU per stored event, ratios and targets."""

from __future__ import annotations

import os

import pytest

from tokenshare.bench.config import SMOKE
from tokenshare.bench.cpu import TICKS, RunCost, Stat, cpu_seconds, parse_stat, spent, tree
from tokenshare.bench.report import Section, Target, cost_figures
from tokenshare.bench.runner import build_targets, comparison_markdown


def test_stat_line_with_spaces_and_parentheses_in_the_name() -> None:
    line = "4242 (python -m (x) y) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 75 3 4 20 0 9 0 1"
    assert parse_stat(line) == Stat(pid=4242, ppid=17, cpu_ticks=325)


def test_tree_is_the_root_and_its_descendants_only() -> None:
    stats = [Stat(1, 0, 5), Stat(10, 1, 1), Stat(11, 10, 2), Stat(12, 10, 3), Stat(20, 1, 7)]
    assert sorted(s.pid for s in tree(10, stats)) == [10, 11, 12]
    assert tree(99, stats) == []


def test_cpu_seconds_of_this_process_grow_with_work() -> None:
    before = cpu_seconds([os.getpid()])
    total = 0
    while cpu_seconds([os.getpid()])[os.getpid()] - before[os.getpid()] < 3 / TICKS:
        total += sum(range(10_000))
    assert total > 0


def test_spent_counts_a_vanished_tree_as_zero_and_never_negative() -> None:
    assert spent({1: 2.0, 2: 5.0, 3: 1.0}, {1: 3.5, 3: 0.5}) == {1: 1.5, 2: 0.0, 3: 0.0}


def test_cpu_per_stored_events_scales_to_the_unit() -> None:
    cost = RunCost(events=50_000, seconds=2.0, cpu_s=3.0)
    assert cost.rate == 25_000
    assert cost.cpu_per(200_000) == pytest.approx(12.0)
    assert cost.cpu_per(1_000_000) == pytest.approx(60.0)


def test_cost_figures_are_medians_of_the_runs() -> None:
    section = Section("b", "b")
    costs = [RunCost(100, 1.0, 1.0), RunCost(100, 2.0, 3.0), RunCost(100, 4.0, 2.0)]
    cost_figures(section, "arroyo_batched", "arroyo", costs)
    assert section.value("arroyo_batched") == 50.0
    assert section.value("arroyo_batched_cpu") == pytest.approx(4_000.0)
    assert section.value("arroyo_batched_cpu_m") == pytest.approx(20_000.0)
    assert section.figures["arroyo_batched"].runs == [100.0, 50.0, 25.0]


@pytest.mark.parametrize(
    ("value", "op", "threshold", "verdict"),
    [
        (1.2, ">=", 1.5, "missed (0.80x the target: 20% short)"),
        (1.5, ">=", 1.5, "met (1.00x the target)"),
        (1.25, "<=", 1.0, "missed (1.25x the limit: 25% over)"),
        (0.5, "<", 2.0, "met (0.25x the limit)"),
        (None, ">=", 1.0, "not measured"),
    ],
)
def test_target_verdict_carries_the_gap(
    value: float | None, op: str, threshold: float, verdict: str
) -> None:
    assert Target("t", value, op, threshold, "x").verdict() == verdict  # type: ignore[arg-type]


def _section(key: str, **figures: float) -> Section:
    section = Section(key, key)
    for name, value in figures.items():
        cost_figures(section, name, name, [RunCost(int(value), 1.0, 1.0)])
    return section


def test_targets_are_ratios_of_figures_of_the_same_run() -> None:
    sections = {
        "c": _section("c", batched_full=60_000, single_full=30_000, batched_alone=100_000),
        "b": _section(
            "b", arroyo_batched=40_000, arroyo_single=15_000, quix_windowed_batched=10_000,
            quix_windowed_single=5_000,
        ),
        "floor": _section("floor", raw_events_batched=70_000),
        "a": _section("a", batched=400_000),
    }  # fmt: skip
    targets = {t.label: t for t in build_targets(sections, SMOKE)}
    floor = targets["full path batched / floor (consume + insert_arrow into raw_events) batched"]
    assert floor.value == pytest.approx(60 / 70) and floor.met
    arroyo = targets["full path batched / arroyo batched"]
    assert arroyo.value == pytest.approx(1.5) and arroyo.met
    assert targets["full path single / arroyo single"].value == pytest.approx(2.0)
    assert not targets["full path single / arroyo single"].met
    assert targets["full path batched / Quix windowed batched"].value == pytest.approx(6.0)
    assert targets["worker alone batched / raw loop batched"].value == pytest.approx(0.25)
    # each run stored its own events in 1 CPU s: the full path spends 40/60 of arroyo's
    cpu = targets["CPU s per million stored events, full path batched / arroyo batched"]
    assert cpu.value == pytest.approx(40 / 60) and cpu.met
    assert targets["producer, single events"].met is None  # not measured in this run


def test_comparison_lists_only_measured_pipelines() -> None:
    sections = {"a": _section("a", batched=400_000, single=100_000)}
    text = comparison_markdown(sections, SMOKE)
    assert "| raw aiokafka + orjson + dict loop | 400,000 | 100,000 | 0.50 |" in text
    assert "arroyo" not in text


def test_every_target_names_the_tables_that_would_explain_its_miss() -> None:
    assert all(t.explained_by for t in build_targets({}, SMOKE))
