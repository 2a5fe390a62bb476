"""Share-shift rules (thresholds, concentration, jumps, ranks) and the rules configuration."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from tokenshare.schema.outputs import Window
from tokenshare.schema.vocabulary import WindowKind
from tokenshare.streams.shares.config import (
    DEFAULT_PATH,
    ConcentrationRule,
    JumpRule,
    RankRule,
    RulesConfig,
    RulesConfigError,
    ThresholdRule,
    load_rules,
)
from tokenshare.streams.shares.model import Alert, WindowShares
from tokenshare.streams.shares.rules import (
    concentration,
    evaluate,
    hhi,
    jumps,
    ranks,
    thresholds,
)
from tokenshare.streams.shares.windows import DaySums, series

#: Monday of 2026-W06.
MONDAY = date(2026, 2, 2)


def make_series(
    rows: list[dict[str, float]],
    dimension: str = "weights",
    measure: str = "tokens",
    kind: WindowKind = "iso_week",
    final: bool | list[bool] = True,
) -> list[WindowShares]:
    """One window per dict of totals, consecutive, oldest first."""
    finals = final if isinstance(final, list) else [final] * len(rows)
    step = timedelta(days=7 if kind == "iso_week" else 1)
    out = []
    for i, (totals, is_final) in enumerate(zip(rows, finals, strict=True)):
        start = MONDAY + i * step
        out.append(
            WindowShares(
                Window(start, start + timedelta(days=7), kind),
                dimension,
                measure,
                dict(totals),
                is_final,
            )
        )
    return out


def open_share(*percents: float, unidentified: float = 0) -> list[dict[str, float]]:
    """weights totals with `open` at each given percent of the identified traffic."""
    return [{"open": p, "closed": 100 - p, "unidentified": unidentified} for p in percents]


def labels(alerts: list[Alert]) -> list[tuple[str, str]]:
    return [(a.window.label, a.subject) for a in alerts]


# --- thresholds ------------------------------------------------------------------

OPEN_30 = ThresholdRule(dimension="weights", value="open", level=0.30)


def test_threshold_fires_once_when_rising_above() -> None:
    alerts = thresholds(make_series(open_share(25, 28, 31, 35)), OPEN_30)
    assert labels(alerts) == [("2026-W08", "open above 30%")]
    (alert,) = alerts
    assert alert.rule == "threshold"
    assert alert.text == "weights: open rose above 30% of tokens in 2026-W08 (28.0% -> 31.0%)"
    assert alert.details["share_before"] == pytest.approx(0.28)
    assert alert.details["share_after"] == pytest.approx(0.31)
    assert alert.details["total_after"] == 31
    assert alert.details["level"] == 0.30
    assert alert.details["window_before"] == "2026-W07"


def test_threshold_fires_when_falling_below() -> None:
    alerts = thresholds(make_series(open_share(35, 31, 28, 25)), OPEN_30)
    assert labels(alerts) == [("2026-W08", "open below 30%")]
    assert "fell below 30%" in alerts[0].text


def test_threshold_fires_at_each_crossing_and_counts_the_level_as_above() -> None:
    alerts = thresholds(make_series(open_share(29, 30, 29.9, 40)), OPEN_30)
    assert labels(alerts) == [
        ("2026-W07", "open above 30%"),
        ("2026-W08", "open below 30%"),
        ("2026-W09", "open above 30%"),
    ]


def test_first_window_never_fires() -> None:
    assert thresholds(make_series(open_share(40)), OPEN_30) == []
    assert thresholds([], OPEN_30) == []


def test_value_absent_from_a_window_has_share_zero() -> None:
    rows: list[dict[str, float]] = [{"closed": 100}, {"open": 40, "closed": 60}]
    assert labels(thresholds(make_series(rows), OPEN_30)) == [("2026-W07", "open above 30%")]


def test_status_follows_the_current_window_and_changes_the_id() -> None:
    final = thresholds(make_series(open_share(25, 35), final=[True, True]), OPEN_30)
    provisional = thresholds(make_series(open_share(25, 35), final=[True, False]), OPEN_30)
    assert [a.status for a in final] == ["final"]
    assert [a.status for a in provisional] == ["provisional"]
    assert final[0].alert_id != provisional[0].alert_id
    # A still-open previous window does not make the finding provisional.
    reopened = thresholds(make_series(open_share(25, 35), final=[False, True]), OPEN_30)
    assert reopened[0].alert_id == final[0].alert_id


def test_threshold_exclude_unidentified() -> None:
    # open 25 -> 28 of all traffic, but 27.8% -> 31.1% of identified traffic.
    rows: list[dict[str, float]] = [
        {"open": 25, "closed": 65, "unidentified": 10},
        {"open": 28, "closed": 62, "unidentified": 10},
    ]
    assert thresholds(make_series(rows), OPEN_30) == []
    excluding = OPEN_30.model_copy(update={"exclude_unidentified": True})
    alerts = thresholds(make_series(rows), excluding)
    assert labels(alerts) == [("2026-W07", "open above 30%")]
    assert alerts[0].details["exclude_unidentified"] is True


def test_only_unidentified_traffic_is_not_compared() -> None:
    rule = OPEN_30.model_copy(update={"exclude_unidentified": True})
    rows: list[dict[str, float]] = [
        {"open": 40, "closed": 60},
        {"unidentified": 5},
        {"open": 20, "closed": 80},
    ]
    assert thresholds(make_series(rows), rule) == []


def test_close_levels_give_distinct_subjects() -> None:
    rule = ThresholdRule(dimension="weights", value="open", level=0.255)
    assert labels(thresholds(make_series(open_share(25, 26)), rule)) == [
        ("2026-W07", "open above 25.5%")
    ]


def test_a_series_of_another_dimension_is_refused() -> None:
    with pytest.raises(ValueError, match="ThresholdRule on weights/tokens"):
        thresholds(make_series(open_share(25, 35), dimension="model"), OPEN_30)


def test_same_input_same_alerts() -> None:
    rows = open_share(25, 35, 20, 40)
    first = thresholds(make_series(rows), OPEN_30)
    again = thresholds(make_series(rows), OPEN_30)
    assert [a.alert_id for a in first] == [a.alert_id for a in again]
    assert [a.text for a in first] == [a.text for a in again]
    assert len({a.alert_id for a in first}) == 3


# --- concentration ---------------------------------------------------------------

TOP1_25 = ConcentrationRule(dimension="model", top1_level=0.25)
HHI_15 = ConcentrationRule(dimension="model", hhi_level=0.15)


def models(*rows: dict[str, float], final: bool | list[bool] = True) -> list[WindowShares]:
    return make_series(list(rows), dimension="model", final=final)


def test_top1_crossing_both_ways_names_the_leader() -> None:
    s = models(
        {"a": 22, "b": 20, "c": 58 / 3, "d": 58 / 3, "e": 58 / 3},
        {"a": 26, "b": 20, "c": 18, "d": 18, "e": 18},
        {"a": 27, "b": 20, "c": 18, "d": 18, "e": 17},
        {"a": 20, "b": 24, "c": 20, "d": 18, "e": 18},
    )
    alerts = concentration(s, TOP1_25)
    assert labels(alerts) == [("2026-W07", "top1 above 25%"), ("2026-W09", "top1 below 25%")]
    up, down = alerts
    assert up.rule == "concentration"
    assert up.details["top_after"] == "a" and up.details["share_after"] == pytest.approx(0.26)
    assert "a at 26.0%" in up.text and "rose above 25%" in up.text
    assert down.details["top_before"] == "a" and down.details["top_after"] == "b"
    assert "fell below 25%" in down.text


def test_top1_crossing_when_the_leader_changes() -> None:
    # a holds 24%, then b takes the lead with 30%: the market got more concentrated.
    s = models({"a": 24, "b": 20, "c": 56}, {"a": 20, "b": 30, "c": 50})
    # c leads both windows (56% -> 50%): no crossing of 25%.
    assert concentration(s, TOP1_25) == []
    s = models(
        {"a": 24, "b": 20, "c": 20, "d": 18, "e": 18}, {"a": 20, "b": 30, "c": 20, "d": 15, "e": 15}
    )
    (alert,) = concentration(s, TOP1_25)
    assert (alert.details["top_before"], alert.details["top_after"]) == ("a", "b")


def test_hhi_crossing_both_ways() -> None:
    even = {k: 10.0 for k in "abcdefghij"}  # HHI 0.10
    heavy = {"a": 40.0, "b": 20, "c": 20, "d": 20}  # HHI 0.28
    s = models(even, even, heavy, heavy, even)
    alerts = concentration(s, HHI_15)
    assert labels(alerts) == [("2026-W08", "hhi above 0.15"), ("2026-W10", "hhi below 0.15")]
    assert alerts[0].details["hhi_after"] == pytest.approx(0.28)
    assert alerts[0].details["hhi_before"] == pytest.approx(0.10)
    assert "(0.100 -> 0.280)" in alerts[0].text


def test_concentration_runs_only_the_levels_it_has() -> None:
    s = models({k: 10.0 for k in "abcdefghij"}, {"a": 40.0, "b": 20, "c": 20, "d": 20})
    assert [a.subject for a in concentration(s, HHI_15)] == ["hhi above 0.15"]
    assert [a.subject for a in concentration(s, TOP1_25)] == ["top1 above 25%"]
    both = ConcentrationRule(dimension="model", top1_level=0.25, hhi_level=0.15)
    assert [a.subject for a in concentration(s, both)] == ["top1 above 25%", "hhi above 0.15"]


def test_concentration_exclude_unidentified() -> None:
    # a is 20% of all traffic, 40% of identified traffic, in the second window only.
    s = models(
        {"a": 10, "b": 10, "c": 10, "unidentified": 70},
        {"a": 20, "b": 15, "c": 15, "unidentified": 50},
    )
    assert concentration(s, TOP1_25) == []  # identified: 33% -> 40%, always above
    including = TOP1_25.model_copy(update={"exclude_unidentified": False})
    # Unidentified leads both windows (70% -> 50%): still no crossing.
    assert concentration(s, including) == []
    s = models(
        {"a": 20, "b": 20, "c": 20, "d": 20, "unidentified": 20},
        {"a": 22, "b": 22, "c": 22, "d": 22, "unidentified": 12},
    )
    # identified: 25% -> 25% (at the level both times); all traffic: 20% -> 22%.
    assert concentration(s, TOP1_25) == []
    assert concentration(s, including) == []
    s = models(
        {"a": 20, "b": 20, "c": 20, "d": 20, "unidentified": 20},
        {"a": 20, "b": 20, "c": 20, "d": 20, "unidentified": 20},
        {"a": 26, "b": 20, "c": 20, "d": 20, "unidentified": 14},
    )
    assert labels(concentration(s, including)) == [("2026-W08", "top1 above 25%")]
    assert concentration(s, TOP1_25) == []  # identified: 25% -> 25% -> 30.2%, never below


def test_hhi_value() -> None:
    (ws,) = models({"a": 50, "b": 50, "unidentified": 100})
    assert hhi(ws, True) == pytest.approx(0.5)
    assert hhi(ws, False) == pytest.approx(0.375)


# --- jumps -----------------------------------------------------------------------

BLOC_5 = JumpRule(dimension="origin_bloc", points=5)


def blocs(*rows: dict[str, float], final: bool | list[bool] = True) -> list[WindowShares]:
    return make_series(list(rows), dimension="origin_bloc", final=final)


def test_jump_one_alert_per_value_and_direction() -> None:
    s = blocs(
        {"China": 20, "US": 70, "RoW": 10},
        {"China": 26, "US": 64, "RoW": 10},
        {"China": 28, "US": 62, "RoW": 10},
    )
    alerts = jumps(s, BLOC_5)
    assert labels(alerts) == [("2026-W07", "China up"), ("2026-W07", "US down")]
    china, us = alerts
    assert china.rule == "jump"
    assert china.details["delta_pp"] == pytest.approx(6.0)
    assert us.details["delta_pp"] == pytest.approx(-6.0)
    assert china.text == "origin_bloc: China up 6.0 pp to 26.0% of tokens in 2026-W07 (from 20.0%)"


def test_jump_of_exactly_the_points_fires() -> None:
    # 0.30 - 0.25 is 0.04999999999999999 in floating point.
    s = blocs({"China": 25, "US": 75}, {"China": 30, "US": 70}, {"China": 25.1, "US": 74.9})
    assert labels(jumps(s, BLOC_5)) == [
        ("2026-W07", "China up"),
        ("2026-W07", "US down"),
    ]  # 4.9 points back is not a jump


def test_jump_appearing_and_vanishing_values() -> None:
    s = blocs({"US": 100}, {"China": 10, "US": 90}, {"US": 100})
    assert labels(jumps(s, BLOC_5)) == [
        ("2026-W07", "China up"),
        ("2026-W07", "US down"),
        ("2026-W08", "China down"),
        ("2026-W08", "US up"),
    ]


def test_jump_ignores_values_below_min_share_in_both_windows() -> None:
    rule = BLOC_5.model_copy(update={"min_share": 0.2})
    s = blocs({"China": 10, "US": 90}, {"China": 16, "US": 84}, {"China": 22, "US": 78})
    # China 10% -> 16%: under 20% in both; 16% -> 22%: above it after.
    assert labels(jumps(s, rule)) == [
        ("2026-W07", "US down"),
        ("2026-W08", "China up"),
        ("2026-W08", "US down"),
    ]


def test_jump_exclude_unidentified() -> None:
    s = blocs(
        {"China": 20, "US": 60, "unidentified": 20}, {"China": 20, "US": 60, "unidentified": 0}
    )
    # Identified traffic: 25/75 both times. All traffic: unidentified -20, others +5 and +15.
    assert jumps(s, BLOC_5) == []
    including = BLOC_5.model_copy(update={"exclude_unidentified": False})
    assert labels(jumps(s, including)) == [
        ("2026-W07", "China up"),
        ("2026-W07", "US up"),
        ("2026-W07", "unidentified down"),
    ]


def test_jump_subject_is_stable_while_the_window_fills() -> None:
    partial = blocs({"China": 20, "US": 80}, {"China": 27, "US": 73}, final=[True, False])
    fuller = blocs({"China": 20, "US": 80}, {"China": 29, "US": 71}, final=[True, False])
    closed = blocs({"China": 20, "US": 80}, {"China": 29, "US": 71})
    ids = [[a.alert_id for a in jumps(s, BLOC_5)] for s in (partial, fuller, closed)]
    assert ids[0] == ids[1]  # same finding about the same open window: one alert
    assert set(ids[0]).isdisjoint(ids[2])  # the final one is an event of its own
    assert jumps(partial, BLOC_5)[0].details["share_after"] == pytest.approx(0.27)


# --- ranks -----------------------------------------------------------------------

TOP3 = RankRule(dimension="model", top_n=3)


def test_rank_no_alert_while_the_order_holds() -> None:
    s = models({"a": 40, "b": 30, "c": 20, "d": 10}, {"a": 35, "b": 34, "c": 21, "d": 10})
    assert ranks(s, TOP3) == []


def test_rank_swap_is_one_alert_with_moves() -> None:
    s = models(
        {"a": 40, "b": 30, "c": 20, "d": 10},
        {"a": 30, "b": 40, "c": 20, "d": 10},
        {"a": 30, "b": 40, "c": 20, "d": 10},
    )
    (alert,) = ranks(s, TOP3)
    assert (alert.window.label, alert.subject, alert.rule) == ("2026-W07", "top3 changed", "rank")
    assert alert.details["before"] == ["a", "b", "c"]
    assert alert.details["after"] == ["b", "a", "c"]
    assert alert.details["entered"] == [] and alert.details["left"] == []
    assert alert.details["moves"] == [
        {"value": "b", "from": 2, "to": 1},
        {"value": "a", "from": 1, "to": 2},
    ]
    assert alert.text == (
        "model: top 3 by tokens changed in 2026-W07: b #2 -> #1; a #1 -> #2 (now b, a, c)"
    )


def test_rank_entry_and_exit() -> None:
    s = models({"a": 40, "b": 30, "c": 20, "d": 10}, {"a": 40, "b": 30, "c": 10, "d": 20})
    (alert,) = ranks(s, TOP3)
    assert alert.details["entered"] == ["d"] and alert.details["left"] == ["c"]
    assert alert.details["moves"] == []
    assert "d entered at #3; c left" in alert.text


def test_rank_changes_below_the_top_n_are_ignored() -> None:
    s = models(
        {"a": 40, "b": 30, "c": 20, "d": 6, "e": 4}, {"a": 40, "b": 30, "c": 20, "d": 4, "e": 6}
    )
    assert ranks(s, TOP3) == []


def test_rank_ties_are_broken_by_name() -> None:
    s = models({"b": 30, "a": 30, "c": 40}, {"a": 30, "c": 40, "b": 30})
    assert ranks(s, TOP3) == []
    s = models({"a": 30, "b": 29, "c": 41}, {"a": 30, "b": 30, "c": 40})  # b ties a: a first
    assert ranks(s, TOP3) == []


def test_rank_exclude_unidentified() -> None:
    s = models(
        {"a": 40, "b": 30, "c": 20, "unidentified": 10},
        {"a": 40, "b": 30, "c": 20, "unidentified": 35},
    )
    assert ranks(s, TOP3) == []
    including = TOP3.model_copy(update={"exclude_unidentified": False})
    (alert,) = ranks(s, including)
    assert alert.details["after"] == ["a", "unidentified", "b"]


def test_rank_provisional_and_final_are_distinct() -> None:
    rows = [{"a": 40.0, "b": 30}, {"a": 30.0, "b": 40}]
    provisional = ranks(models(*rows, final=[True, False]), TOP3)
    final = ranks(models(*rows), TOP3)
    assert [a.status for a in provisional + final] == ["provisional", "final"]
    assert provisional[0].alert_id != final[0].alert_id


# --- evaluate --------------------------------------------------------------------


def test_evaluate_runs_every_rule_in_every_window_kind() -> None:
    cfg = RulesConfig(thresholds=[OPEN_30], concentration=[TOP1_25], jumps=[BLOC_5], ranks=[TOP3])
    data: dict[str, list[dict[str, float]]] = {
        "weights": open_share(25, 35),
        "model": [
            {"a": 20, "b": 20, "c": 20, "d": 20, "e": 20},
            {"a": 20, "b": 30, "c": 20, "d": 15, "e": 15},
        ],
        "origin_bloc": [{"China": 20, "US": 80}, {"China": 30, "US": 70}],
    }
    calls: list[tuple[str, str, WindowKind]] = []

    def get_series(dimension: str, measure: str, kind: WindowKind) -> list[WindowShares]:
        calls.append((dimension, measure, kind))
        return make_series(data[dimension], dimension=dimension, measure=measure, kind=kind)

    alerts = evaluate(get_series, cfg)
    found = {(a.window.kind, a.rule, a.subject) for a in alerts}
    for kind in ("iso_week", "rolling_7d"):
        assert {
            (kind, "threshold", "open above 30%"),
            (kind, "concentration", "top1 above 25%"),
            (kind, "jump", "China up"),
            (kind, "jump", "US down"),
            (kind, "rank", "top3 changed"),
        } <= found
    assert not any(a.rule == "crossover" for a in alerts)
    assert ("model", "tokens", "rolling_7d") in calls
    assert [a.alert_id for a in evaluate(get_series, cfg)] == [a.alert_id for a in alerts]


def test_evaluate_only_the_configured_window_kinds() -> None:
    cfg = RulesConfig(windows=["iso_week"], thresholds=[OPEN_30])

    def get_series(dimension: str, measure: str, kind: WindowKind) -> list[WindowShares]:
        return make_series(open_share(25, 35), kind=kind)

    assert {a.window.kind for a in evaluate(get_series, cfg)} == {"iso_week"}


def test_evaluate_over_day_sums_with_the_default_rules() -> None:
    """End to end over windows.series: open weights cross 30% in the second week."""
    sums = DaySums()
    for day in range(14):
        d = MONDAY + timedelta(days=day)
        open_tokens = 20.0 if day < 7 else 40.0
        sums.add("weights", "open", d, (open_tokens, 0, 0, 1, 0))
        sums.add("weights", "closed", d, (60.0, 0, 0, 1, 0))
    sums.max_ts = datetime.combine(MONDAY + timedelta(days=13), datetime.min.time(), UTC)
    cfg = load_rules()
    mark = sums.max_ts - cfg.lateness

    def get_series(dimension: str, measure: str, kind: WindowKind) -> list[WindowShares]:
        return series(sums, dimension, measure, kind, mark)

    alerts = [a for a in evaluate(get_series, cfg) if a.rule == "threshold"]
    weekly = [a for a in alerts if a.window.kind == "iso_week"]
    assert labels(weekly) == [("2026-W07", "open above 30%")]
    assert weekly[0].status == "provisional"  # the week is still open
    rolling = [a for a in alerts if a.window.kind == "rolling_7d"]
    assert [a.window.label for a in rolling] == ["2026-02-04..2026-02-10"]
    assert [a.alert_id for a in evaluate(get_series, cfg) if a.rule == "threshold"] == [
        a.alert_id for a in alerts
    ]


# --- configuration ---------------------------------------------------------------


def test_default_rules_load() -> None:
    cfg = load_rules()
    assert cfg == load_rules(DEFAULT_PATH)
    assert cfg.lateness == timedelta(hours=24)
    assert cfg.windows == ["iso_week", "rolling_7d"]
    assert cfg.crossover.top_k == 3
    assert "origin_bloc" in cfg.crossover.dimensions and "model" in cfg.crossover.dimensions
    assert {(p.dimension, p.a, p.b) for p in cfg.crossover.pairs} == {
        ("origin_bloc", "China", "US"),
        ("weights", "open", "closed"),
    }
    assert {(t.dimension, t.value, t.level) for t in cfg.thresholds} == {
        ("weights", "open", 0.30),
        ("reasoning", "reasoning", 0.50),
        ("category", "programming", 0.50),
        ("origin_bloc", "China", 0.25),
    }
    assert {(c.dimension, c.top1_level, c.hhi_level) for c in cfg.concentration} == {
        ("model", 0.25, 0.15),
        ("author", 0.40, None),
    }
    assert {(j.dimension, j.points) for j in cfg.jumps} == {
        ("origin_bloc", 5),
        ("author", 5),
        ("model", 5),
    }
    assert {(r.dimension, r.top_n) for r in cfg.ranks} == {("model", 5), ("author", 5)}


def test_empty_file_means_defaults_and_no_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text("")
    cfg = load_rules(path)
    assert cfg == RulesConfig()
    assert cfg.crossover.dimensions == [] and cfg.thresholds == []


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[[thresholds]]\ndimension = "nope"\nvalue = "x"\nlevel = 0.5\n',
            r"thresholds\.0\.dimension: unknown dimension 'nope'; expected one of: origin_bloc",
        ),
        (
            '[[jumps]]\ndimension = "model"\nmeasure = "tokenz"\npoints = 5\n',
            r"jumps\.0\.measure: unknown measure 'tokenz'; expected one of: tokens",
        ),
        ('[[ranks]]\ndimension = "model"\ntopn = 3\n', r"ranks\.0\.topn: unknown key"),
        ("lateness = 3\n", r"lateness: unknown key"),
        (
            '[crossover]\ndimensions = ["model", "modle"]\n',
            r"crossover\.dimensions\.1: unknown dimension 'modle'",
        ),
        (
            '[crossover]\ndimensions = ["model"]\n[[crossover.pairs]]\ndimension = "weights"\n'
            'a = "open"\nb = "closed"\n',
            r"crossover: .*not in crossover\.dimensions",
        ),
        (
            '[crossover]\ndimensions = ["weights"]\n[[crossover.pairs]]\ndimension = "weights"\n'
            'a = "open"\nb = "open"\n',
            r"crossover\.pairs\.0: a pair needs two different values",
        ),
        ("[crossover]\ntop_k = 1\n", r"crossover\.top_k: Input should be greater than or equal"),
        (
            '[[thresholds]]\ndimension = "weights"\nvalue = "open"\nlevel = 30\n',
            r"thresholds\.0\.level: Input should be less than 1",
        ),
        (
            '[[concentration]]\ndimension = "model"\n',
            r"concentration\.0: set top1_level, hhi_level or both",
        ),
        ('[[jumps]]\ndimension = "model"\npoints = 0\n', r"jumps\.0\.points: Input should be"),
        ('[[jumps]]\ndimension = "model"\n', r"jumps\.0\.points: Field required"),
        ('windows = ["iso_week", "monthly"]\n', r"windows\.1: Input should be 'iso_week'"),
        ('windows = ["iso_week", "iso_week"]\n', r"windows lists a kind more than once"),
        ("lateness_hours = -1\n", r"lateness_hours: Input should be greater than or equal to 0"),
    ],
)
def test_bad_rules_name_the_field(tmp_path: Path, toml: str, expected: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(toml)
    with pytest.raises(RulesConfigError, match=expected) as info:
        load_rules(path)
    assert str(path) in str(info.value)


def test_unreadable_or_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(RulesConfigError, match="cannot read rules file"):
        load_rules(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[thresholds]\n")
    with pytest.raises(RulesConfigError, match="not valid TOML"):
        load_rules(bad)
