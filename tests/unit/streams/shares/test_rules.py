"""Share-shift rules (thresholds, concentration, jumps, ranks) and the rules configuration.

Levels have hysteresis and a baseline at the first window (see ``rules``).
"""

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
    assert alert.rule == "threshold" and alert.kind == "change"
    assert alert.text == "weights: open rose above 30% of tokens in 2026-W08 (28.0% -> 31.0%)"
    assert alert.details["share_before"] == pytest.approx(0.28)
    assert alert.details["share_after"] == pytest.approx(0.31)
    assert alert.details["total_after"] == 31
    assert alert.details["level"] == 0.30
    assert alert.details["window_before"] == "2026-W07"
    assert "margin 2 pp" in alert.explanation


def test_threshold_falls_below_only_past_the_margin() -> None:
    # Above at the start: a baseline; 29% is inside the 2-point band; 27% is out.
    alerts = thresholds(make_series(open_share(35, 29, 31, 27, 29)), OPEN_30)
    assert labels(alerts) == [
        ("2026-W06", "open above 30% (baseline)"),
        ("2026-W09", "open below 30%"),
    ]
    assert "fell below 30%" in alerts[1].text


def test_hysteresis_keeps_noise_around_the_level_to_one_alert() -> None:
    # The flapping of programming at 50% (up, down, up on noise) is one alert now.
    rule = ThresholdRule(dimension="category", value="programming", level=0.5, margin_pp=2)

    def prog(*p: float) -> list[dict[str, float]]:
        return [{"programming": x, "roleplay": 100 - x} for x in p]

    s = make_series(prog(48, 50.5, 49.2, 50.8, 49.0, 51), dimension="category")
    assert labels(thresholds(s, rule)) == [("2026-W07", "programming above 50%")]
    no_band = rule.model_copy(update={"margin_pp": 0})
    assert len(thresholds(s, no_band)) == 5  # what it used to be: every crossing


def test_threshold_counts_the_level_as_above() -> None:
    alerts = thresholds(make_series(open_share(29, 30, 29.9, 40)), OPEN_30)
    assert labels(alerts) == [("2026-W07", "open above 30%")]


def test_baseline_reports_a_level_already_passed_once() -> None:
    alerts = thresholds(make_series(open_share(40, 41, 45)), OPEN_30)
    (alert,) = alerts
    assert (alert.kind, alert.severity, alert.window.label) == ("baseline", "info", "2026-W06")
    assert alert.text == (
        "weights: open is above 30% of tokens in 2026-W06 (40.0%) at the first evaluation"
    )
    quiet = OPEN_30.model_copy(update={"baseline": False})
    assert thresholds(make_series(open_share(40, 41, 45)), quiet) == []
    assert thresholds(make_series(open_share(20)), OPEN_30) == []
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


def test_only_unidentified_traffic_is_skipped() -> None:
    rule = OPEN_30.model_copy(update={"exclude_unidentified": True})
    rows: list[dict[str, float]] = [
        {"open": 20, "closed": 80},
        {"unidentified": 5},
        {"open": 40, "closed": 60},
    ]
    # The middle window has nothing to share: the rise is against the first one.
    (alert,) = thresholds(make_series(rows), rule)
    assert alert.window.label == "2026-W08" and alert.details["window_before"] == "2026-W06"


def test_close_levels_give_distinct_subjects() -> None:
    rule = ThresholdRule(dimension="weights", value="open", level=0.255)
    assert labels(thresholds(make_series(open_share(25, 26)), rule)) == [
        ("2026-W07", "open above 25.5%")
    ]


def test_same_input_same_alerts() -> None:
    rows = open_share(25, 35, 20, 40)
    first = thresholds(make_series(rows), OPEN_30)
    again = thresholds(make_series(rows), OPEN_30)
    assert [a.alert_id for a in first] == [a.alert_id for a in again]
    assert [a.text for a in first] == [a.text for a in again]
    assert len({a.alert_id for a in first}) == 3


# --- concentration ---------------------------------------------------------------

TOP1_25 = ConcentrationRule(dimension="model", top1_level=0.25, margin_pp=0)
HHI_15 = ConcentrationRule(dimension="model", hhi_level=0.15, margin_pp=0)


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
    assert "a took more than 25%" in up.text and "(26.0%)" in up.text
    assert down.details["top_after"] == "b"
    assert "no value holds 25% of tokens any more" in down.text


def test_top1_baseline_and_margin() -> None:
    s = models({"a": 60, "b": 40}, {"a": 24, "b": 19, "c": 19, "d": 19, "e": 19})
    assert labels(concentration(s, TOP1_25)) == [
        ("2026-W06", "top1 above 25% (baseline)"),
        ("2026-W07", "top1 below 25%"),
    ]
    banded = TOP1_25.model_copy(update={"margin_pp": 2})
    assert labels(concentration(s, banded)) == [("2026-W06", "top1 above 25% (baseline)")]


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


def test_hhi_value() -> None:
    (ws,) = models({"a": 50, "b": 50, "unidentified": 100})
    assert hhi(ws, True) == pytest.approx(0.5)
    assert hhi(ws, False) == pytest.approx(0.375)


# --- jumps -----------------------------------------------------------------------

BLOC_5 = JumpRule(dimension="origin_bloc", points=5)


def blocs(*rows: dict[str, float], final: bool | list[bool] = True) -> list[WindowShares]:
    return make_series(list(rows), dimension="origin_bloc", final=final)


def test_jump_one_alert_per_movement() -> None:
    s = blocs(
        {"China": 20, "US": 70, "RoW": 10},
        {"China": 26, "US": 64, "RoW": 10},
        {"China": 28, "US": 62, "RoW": 10},
    )
    (alert,) = jumps(s, BLOC_5)  # China up and US down: one movement, one alert
    assert labels([alert]) == [("2026-W07", "shift")]
    assert alert.rule == "jump"
    assert [m["value"] for m in alert.details["moves"]] == ["China", "US"]
    assert alert.details["moves"][0]["delta_pp"] == pytest.approx(6.0)
    assert alert.details["moves"][1]["delta_pp"] == pytest.approx(-6.0)
    assert alert.text == (
        "origin_bloc: China up 6.0 pp to 26.0%, US down 6.0 pp to 64.0% of tokens in 2026-W07"
    )


def test_jump_of_exactly_the_points_fires() -> None:
    # 0.30 - 0.25 is 0.04999999999999999 in floating point.
    s = blocs({"China": 25, "US": 75}, {"China": 30, "US": 70}, {"China": 25.1, "US": 74.9})
    assert labels(jumps(s, BLOC_5)) == [("2026-W07", "shift")]  # 4.9 points back is not


def test_jump_ignores_values_below_min_share_in_both_windows() -> None:
    rule = BLOC_5.model_copy(update={"min_share": 0.2})
    s = blocs({"China": 10, "US": 90}, {"China": 16, "US": 84}, {"China": 22, "US": 78})
    first, second = jumps(s, rule)
    assert [m["value"] for m in first.details["moves"]] == ["US"]
    assert [m["value"] for m in second.details["moves"]] == ["China", "US"]


def test_jump_subject_is_stable_while_the_window_fills() -> None:
    partial = blocs({"China": 20, "US": 80}, {"China": 27, "US": 73}, final=[True, False])
    fuller = blocs({"China": 20, "US": 80}, {"China": 29, "US": 71}, final=[True, False])
    closed = blocs({"China": 20, "US": 80}, {"China": 29, "US": 71})
    ids = [[a.alert_id for a in jumps(s, BLOC_5)] for s in (partial, fuller, closed)]
    assert ids[0] == ids[1]  # same finding about the same open window: one alert
    assert set(ids[0]).isdisjoint(ids[2])  # the final one is an event of its own


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


def test_evaluate_runs_every_rule_in_its_window_kinds() -> None:
    cfg = RulesConfig(
        windows=["iso_week", "rolling_7d"],
        thresholds=[OPEN_30],
        concentration=[TOP1_25],
        jumps=[BLOC_5],
        ranks=[TOP3.model_copy(update={"windows": ["iso_week"]})],
    )
    data: dict[str, list[dict[str, float]]] = {
        "weights": open_share(25, 35),
        "model": [
            {"a": 20, "b": 20, "c": 20, "d": 20, "e": 20},
            {"a": 20, "b": 30, "c": 20, "d": 15, "e": 15},
        ],
        "origin_bloc": [{"China": 20, "US": 80}, {"China": 30, "US": 70}],
    }
    calls: list[tuple[str, str, WindowKind, str]] = []

    def get_series(
        dimension: str, measure: str, kind: WindowKind, segment: str = ""
    ) -> list[WindowShares]:
        calls.append((dimension, measure, kind, segment))
        return make_series(data[dimension], dimension=dimension, measure=measure, kind=kind)

    alerts = evaluate(get_series, cfg)  # type: ignore[arg-type]
    found = {(a.window.kind, a.rule, a.subject) for a in alerts}
    for kind in ("iso_week", "rolling_7d"):
        assert {
            (kind, "threshold", "open above 30%"),
            (kind, "concentration", "top1 above 25%"),
            (kind, "jump", "shift"),
        } <= found
    assert ("iso_week", "rank", "top3 changed") in found
    assert ("rolling_7d", "rank", "top3 changed") not in found
    assert ("model", "tokens", "rolling_7d", "") in calls
    again = evaluate(get_series, cfg)  # type: ignore[arg-type]
    assert [a.alert_id for a in again] == [a.alert_id for a in alerts]


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

    def get_series(
        dimension: str, measure: str, kind: WindowKind, segment: str = ""
    ) -> list[WindowShares]:
        return series(sums, dimension, measure, kind, mark, segment)  # type: ignore[arg-type]

    alerts = [a for a in evaluate(get_series, cfg) if a.rule == "threshold"]  # type: ignore[arg-type]
    assert labels(alerts) == [("2026-W07", "open above 30%")]
    assert alerts[0].status == "provisional"  # the week is still open
    assert alerts[0].rule_name == "open weights over 30%"


# --- configuration ---------------------------------------------------------------


def test_default_rules_load() -> None:
    cfg = load_rules()
    assert cfg == load_rules(DEFAULT_PATH)
    assert cfg.lateness == timedelta(hours=24)
    assert cfg.windows == ["iso_week"]
    china_us = cfg.crossover[0]
    assert {(p.dimension, p.a, p.b) for p in china_us.pairs} == {("origin_bloc", "China", "US")}
    assert china_us.severity == "critical"
    assert {(t.dimension, t.value, t.level) for t in cfg.thresholds} == {
        ("weights", "open", 0.30),
        ("reasoning", "reasoning", 0.50),
        ("category", "programming", 0.50),
    }
    (open_top,) = cfg.concentration
    assert (open_top.where, open_top.top1_level) == ({"weights": "open"}, 0.25)
    assert [g.level for g in cfg.catalog_gap] == [0.05]
    names = [r.rule_name for r in cfg.all_rules()]
    assert len(names) == len(set(names))
    # The evaluation keys a partitioned evaluator splits by, and what they read.
    keys = cfg.evaluation_keys()
    assert "origin_bloc" in keys and "catalog_gap" in keys
    assert cfg.dimensions_for(["catalog_gap"]) == {"weights", "origin_bloc", "model", "author"}
    assert cfg.dimensions_for(["category"]) == {"category"}
    assert cfg.segments_for(["category"]) == {""}
    assert cfg.segments_for() == {
        "",
        "weights=open",
        "weights=unidentified",
        "origin_bloc=unidentified",
    }


def test_empty_file_means_defaults_and_no_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text("")
    cfg = load_rules(path)
    assert cfg == RulesConfig()
    assert cfg.crossover == [] and cfg.thresholds == [] and cfg.all_rules() == []


def test_one_crossover_table_or_several() -> None:
    one = RulesConfig.model_validate({"crossover": {"dimensions": ["model"]}})
    many = RulesConfig.model_validate(
        {
            "crossover": [
                {"dimensions": ["model"]},
                {"dimensions": ["model"], "measure": "spend_usd"},
            ]
        }
    )
    assert [c.measure for c in one.crossover] == ["tokens"]
    assert [c.measure for c in many.crossover] == ["tokens", "spend_usd"]


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[[thresholds]]\ndimension = "nope"\nvalue = "x"\nlevel = 0.5\n',
            r"thresholds\.0\.dimension: unknown dimension 'nope'; expected one of: author",
        ),
        (
            '[[jumps]]\ndimension = "model"\nmeasure = "tokenz"\npoints = 5\n',
            r"jumps\.0\.measure: unknown measure 'tokenz'; did you mean 'tokens'\?",
        ),
        ('[[ranks]]\ndimension = "model"\ntopn = 3\n', r"ranks\.0\.topn: unknown key"),
        ("lateness = 3\n", r"lateness: unknown key"),
        (
            '[crossover]\ndimensions = ["model", "modle"]\n',
            r"crossover\.0\.dimensions\.1: unknown dimension 'modle'; did you mean 'model'",
        ),
        (
            '[crossover]\ndimensions = ["model"]\n[[crossover.pairs]]\ndimension = "weights"\n'
            'a = "open"\nb = "closed"\n',
            r"crossover\.0: .*not in crossover\.dimensions",
        ),
        (
            '[crossover]\ndimensions = ["weights"]\n[[crossover.pairs]]\ndimension = "weights"\n'
            'a = "open"\nb = "open"\n',
            r"crossover\.0\.pairs\.0: a pair needs two different values",
        ),
        ("[crossover]\ntop_k = 1\n", r"crossover\.0: .*top_k must be 0"),
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
        ('windows = ["iso_week", "monthly"]\n', r"windows\.1: .*'monthly'; did you mean 'month'"),
        (
            '[[thresholds]]\ndimension = "origin_bloc"\nvalue = "Chian"\nlevel = 0.3\n',
            r"thresholds\.0\.value: 'Chian' is not a known origin_bloc value; did you mean 'China'",
        ),
        (
            '[[thresholds]]\ndimension = "weights"\nvalue = "open"\nlevel = 0.3\n'
            'where = { origin_blok = "China" }\n',
            r"thresholds\.0\.where\.origin_blok.*did you mean 'origin_bloc'",
        ),
        (
            '[[thresholds]]\ndimension = "weights"\nvalue = "open"\nlevel = 0.3\n'
            'where = { weights = "open" }\n',
            r"filters on weights, the dimension it shares",
        ),
        (
            '[[ratios]]\nratio = "spend_over_token_share"\nabove = 2\n',
            r"ratios\.0: .*set a value",
        ),
        ('[[volumes]]\nmeasure = "tokens"\n', r"volumes\.0: .*set above, below"),
        (
            '[[thresholds]]\ndimension = "weights"\nvalue = "open"\nlevel = 0.3\nname = "x"\n'
            '[[thresholds]]\ndimension = "weights"\nvalue = "open"\nlevel = 0.4\nname = "x"\n',
            r"rule name 'x' is also thresholds\.0's",
        ),
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
