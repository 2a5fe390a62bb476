"""Crafted streams through the share engine: each semantic and rule kind, exactly.

Traffic is written as the store's rollup would hold it (every dimension, for
all traffic and within each segment value), then ``ShareEngine.tick`` runs the
rules; the assertions name the alerts it must publish, and no others.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from tokenshare.schema.outputs import AlertMessage
from tokenshare.schema.vocabulary import DIMENSIONS, SEGMENT_DIMENSIONS
from tokenshare.streams.shares.backtest import backtest
from tokenshare.streams.shares.config import RulesConfig, RulesConfigError, load_rules
from tokenshare.streams.shares.engine import ShareEngine, same_findings
from tokenshare.streams.shares.model import Alert
from tokenshare.streams.shares.windows import DaySums

#: Monday of 2026-W06.
MONDAY = date(2026, 2, 2)

CHINA_OPEN = {"origin_bloc": "China", "weights": "open", "author": "deepseek"}
US_OPEN = {"origin_bloc": "US", "weights": "open", "author": "openai"}
US_CLOSED = {"origin_bloc": "US", "weights": "closed", "author": "anthropic"}


@dataclass(slots=True)
class Traffic:
    """Builds DaySums: each call spreads one kind of request's sums over a week."""

    sums: DaySums = field(default_factory=DaySums)

    def week(
        self,
        week: int,
        tokens: float,
        dims: dict[str, str],
        spend: float = 0.0,
        requests: float = 7.0,
        prompt: float | None = None,
    ) -> None:
        for day in range(7):
            self.day(
                MONDAY + timedelta(weeks=week, days=day),
                tokens / 7,
                spend / 7,
                requests / 7,
                (tokens if prompt is None else prompt) / 7,
                dims,
            )

    def split(self, shares: Iterable[float], a: dict[str, str], b: dict[str, str]) -> None:
        """Week by week from the first: `share` of 100 tokens to `a`, the rest to `b`."""
        for week, share in enumerate(shares):
            self.week(week, share, a)
            self.week(week, 100 - share, b)

    def day(
        self,
        d: date,
        tokens: float,
        spend: float,
        requests: float,
        prompt: float,
        dims: dict[str, str],
    ) -> None:
        values = {dim: dims.get(dim, "unidentified") for dim in DIMENSIONS}
        values.setdefault("model", "m")
        cell = (tokens, prompt, tokens - prompt, requests, spend, 0.0, 0.0, 0.0)
        segments = [""] + [f"{s}={values[s]}" for s in SEGMENT_DIMENSIONS]
        for dimension, value in values.items():
            for segment in segments:
                self.sums.add(dimension, value, d, cell, segment)
        end = datetime.combine(d, time(23, 59), UTC)
        self.sums.max_ts = max(self.sums.max_ts or end, end)

    def closed(self) -> DaySums:
        """The sums with the watermark a day past the last week: every window final."""
        assert self.sums.max_ts is not None
        self.sums.max_ts += timedelta(days=2)
        return self.sums


def rules(toml: str, tmp_path: Path) -> RulesConfig:
    path = tmp_path / "rules.toml"
    path.write_text(toml)
    return load_rules(path)


def fire(cfg: RulesConfig, sums: DaySums) -> list[Alert]:
    return ShareEngine(cfg).tick(sums).alerts


def found(alerts: list[Alert]) -> list[tuple[str, str, str]]:
    return [(a.window.label, a.kind, a.subject) for a in alerts]


def test_hysteresis_fires_once_for_noise_and_again_past_the_band(tmp_path: Path) -> None:
    cfg = rules(
        '[[thresholds]]\ndimension = "category"\nvalue = "programming"\nlevel = 0.5\n'
        "margin_pp = 2\n",
        tmp_path,
    )
    t = Traffic()
    t.split(
        [46, 51, 49, 50.5, 47.5, 49.9, 50], {"category": "programming"}, {"category": "roleplay"}
    )
    assert found(fire(cfg, t.closed())) == [
        ("2026-W07", "change", "programming above 50%"),
        ("2026-W10", "change", "programming below 50%"),
        ("2026-W12", "change", "programming above 50%"),
    ]


def test_baseline_is_reported_once_as_state(tmp_path: Path) -> None:
    cfg = rules(
        '[[thresholds]]\ndimension = "reasoning"\nvalue = "reasoning"\nlevel = 0.5\n', tmp_path
    )
    t = Traffic()
    t.split([60, 61, 62, 63], {"reasoning": "reasoning"}, {"reasoning": "non-reasoning"})
    engine = ShareEngine(cfg)
    (alert,) = engine.tick(t.closed()).alerts
    assert (alert.window.label, alert.kind, alert.severity) == ("2026-W06", "baseline", "info")
    assert "reasoning is above 50% of tokens" in alert.text and "first evaluation" in alert.text
    message = alert.message()
    assert AlertMessage.decode(message.encode()) == message
    assert message.kind == "baseline" and message.explanation
    engine.remember([alert.alert_id])
    assert engine.tick(t.sums).alerts == []  # reported once


def test_one_alert_per_pair_movement(tmp_path: Path) -> None:
    cfg = rules(
        '[[crossover]]\ndimensions = ["origin_bloc"]\ntop_k = 3\n'
        '[[jumps]]\ndimension = "origin_bloc"\npoints = 5\n',
        tmp_path,
    )
    t = Traffic()
    t.split([30, 32, 60, 61], CHINA_OPEN, US_CLOSED)
    assert found(fire(cfg, t.closed())) == [
        ("2026-W08", "change", "China>US"),
        ("2026-W08", "change", "shift"),  # China up and US down: one alert
    ]


def test_budget_then_one_digest(tmp_path: Path) -> None:
    cfg = rules(
        'budget = 2\n[[crossover]]\nname = "models"\ndimensions = ["model"]\ntop_k = 4\n',
        tmp_path,
    )
    t = Traffic()
    order = {0: [40, 30, 20, 10], 1: [41, 31, 19, 9], 2: [10, 20, 30, 40]}
    for week, shares in order.items():
        for name, share in zip("abcd", shares, strict=True):
            t.week(week, share, {"model": f"lab/{name}"})
    alerts = [a for a in fire(cfg, t.closed()) if a.window.label == "2026-W08"]
    kinds = [a.kind for a in alerts]
    assert kinds.count("change") == 2 and kinds.count("digest") == 1
    (digest,) = [a for a in alerts if a.kind == "digest"]
    # Four values reversing order is six crossovers: two alerts, four in the digest.
    assert len(digest.details["alerts"]) == 4
    assert digest.text.startswith("models: 4 more in 2026-W08: ")
    assert digest.subject == "digest models"


def test_a_typo_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    with pytest.raises(
        RulesConfigError,
        match=r"'Chian' is not a known origin_bloc value; "
        r"did you mean 'China'\?",
    ):
        rules('[[thresholds]]\ndimension = "origin_bloc"\nvalue = "Chian"\nlevel = 0.3\n', tmp_path)
    # Request dimensions are checked against the values the data holds.
    cfg = rules(
        '[[thresholds]]\ndimension = "category"\nvalue = "programing"\nlevel = 0.3\n', tmp_path
    )
    t = Traffic()
    t.week(0, 10, {"category": "programming"})
    (problem,) = ShareEngine(cfg).unseen_values(t.closed())
    assert "no category 'programing' in the data; did you mean 'programming'?" in problem


def test_china_open_over_rest_of_world_open(tmp_path: Path) -> None:
    cfg = rules(
        '[[crossover]]\ndimensions = ["origin_bloc"]\nwhere = { weights = "open" }\ntop_k = 0\n'
        'pairs = [{ dimension = "origin_bloc", a = "China", b = "rest" }]\n',
        tmp_path,
    )
    t = Traffic()
    for week, china in enumerate([10, 12, 30, 31]):
        t.week(week, china, CHINA_OPEN)
        t.week(week, 20, US_OPEN)
        t.week(week, 300, US_CLOSED)  # closed traffic: out of the segment
    (alert,) = fire(cfg, t.closed())
    assert found([alert]) == [("2026-W08", "change", "China>rest [weights=open]")]
    assert alert.details["share_after"]["China"] == pytest.approx(0.6)
    assert alert.text.startswith("origin_bloc [weights=open]: China overtook rest")


def test_spend_share_over_token_share(tmp_path: Path) -> None:
    cfg = rules(
        '[[ratios]]\nratio = "spend_over_token_share"\ndimension = "author"\n'
        'value = "anthropic"\nbelow = 2.0\nmargin_pct = 10\n',
        tmp_path,
    )
    t = Traffic()
    # Anthropic: 12% of tokens, 46% of spend (3.8x), then 36% of spend (3x), then 15% (1.25x).
    for week, spend in enumerate([46, 36, 15]):
        t.week(week, 12, US_CLOSED, spend=spend)
        t.week(week, 88, CHINA_OPEN, spend=100 - spend)
    (alert,) = fire(cfg, t.closed())
    assert found([alert]) == [("2026-W08", "change", "anthropic spend_over_token_share below 2")]
    assert alert.measure == "spend_over_token_share" and alert.rule == "ratio"
    assert alert.details["ratio_after"] == pytest.approx(0.15 / 0.12)


def test_prompt_tokens_per_request(tmp_path: Path) -> None:
    cfg = rules('[[ratios]]\nratio = "prompt_tokens_per_request"\nabove = 6000\n', tmp_path)
    t = Traffic()
    for week, prompt in enumerate([1500, 3000, 6500]):
        t.week(week, prompt * 7 + 700, US_CLOSED, requests=7, prompt=prompt * 7)
    (alert,) = fire(cfg, t.closed())
    assert found([alert]) == [("2026-W08", "change", "all prompt_tokens_per_request above 6000")]


def test_volume_drop_between_complete_weeks(tmp_path: Path) -> None:
    cfg = rules('[[volumes]]\nmeasure = "tokens"\ndrop_pct = 30\n', tmp_path)
    t = Traffic()
    for week, tokens in enumerate([700, 700, 420, 700]):
        t.week(week, tokens, US_CLOSED)
    t.day(MONDAY + timedelta(weeks=4), 10, 0, 1, 10, US_CLOSED)  # a partial week: not compared
    (alert,) = fire(cfg, t.closed())
    assert found([alert]) == [("2026-W08", "change", "all drop")]
    assert alert.details["change_pct"] == pytest.approx(-40)


def test_monthly_window(tmp_path: Path) -> None:
    cfg = rules(
        '[[thresholds]]\ndimension = "weights"\nvalue = "open"\nlevel = 0.3\nwindows = ["month"]\n',
        tmp_path,
    )
    t = Traffic()
    for d in range(59):  # February at 20% open, March at 40%
        day = date(2026, 2, 1) + timedelta(days=d)
        share = 20 if day.month == 2 else 40
        t.day(day, share, 0, 1, share, CHINA_OPEN)
        t.day(day, 100 - share, 0, 1, 100 - share, US_CLOSED)
    (alert,) = fire(cfg, t.closed())
    assert (alert.window.kind, alert.window.label) == ("month", "2026-03")
    assert alert.window.start == date(2026, 3, 1) and alert.window.end == date(2026, 4, 1)


def test_catalog_gap_names_the_unknown_lab(tmp_path: Path) -> None:
    cfg = rules("[[catalog_gap]]\nlevel = 0.05\n", tmp_path)
    t = Traffic()
    for week, unknown in enumerate([1, 2, 8, 9, 2, 3]):
        t.week(week, 100 - unknown, US_CLOSED)
        # A model from a lab the catalog does not know: every catalog field unidentified.
        t.week(week, unknown, {"author": "newlab", "model": "newlab/m-1"})
    (alert,) = fire(cfg, t.closed())
    assert (alert.rule, alert.window.label) == ("catalog_gap", "2026-W08")
    assert alert.details["unknown_models"] == [
        {"model": "newlab/m-1", "share": pytest.approx(0.08)}
    ]
    assert alert.details["unknown_labs"] == [{"lab": "newlab", "share": pytest.approx(0.08)}]
    assert "newlab/m-1 8.0%" in alert.text and "labs newlab 8.0%" in alert.text


def test_keys_split_the_evaluation_exactly(tmp_path: Path) -> None:
    cfg = load_rules()
    t = Traffic()
    t.split(
        [30, 60, 40, 70],
        {**CHINA_OPEN, "category": "programming", "reasoning": "reasoning"},
        {**US_CLOSED, "category": "roleplay", "reasoning": "non-reasoning"},
    )
    sums = t.closed()
    whole = {a.alert_id for a in ShareEngine(cfg).tick(sums).alerts}
    keys = cfg.keys()
    parts = [ShareEngine(cfg).tick(sums, keys=[k]).alerts for k in keys]
    ids = [a.alert_id for part in parts for a in part]
    assert len(ids) == len(set(ids)) and set(ids) == whole and whole


def test_backtest_counts_and_flags(tmp_path: Path) -> None:
    cfg = rules(
        '[[jumps]]\nname = "noisy"\ndimension = "origin_bloc"\npoints = 1\n'
        '[[thresholds]]\nname = "quiet"\ndimension = "weights"\nvalue = "open"\nlevel = 0.9\n',
        tmp_path,
    )
    t = Traffic()
    t.split([30, 40, 30, 40, 30], CHINA_OPEN, US_CLOSED)
    report = backtest(cfg, t.closed(), flag_share=0.5)
    by_name = {r.name: r for r in report.rules}
    assert (len(by_name["noisy"].alerts), by_name["noisy"].windows) == (4, 5)
    assert by_name["quiet"].alerts == []
    assert [r.name for r in report.noisy] == ["noisy"]
    part = backtest(cfg, t.sums, first=MONDAY, last=MONDAY + timedelta(days=13))
    assert len({r.name: r for r in part.rules}["noisy"].alerts) == 1


def test_same_findings_holds_until_a_window_closes_or_begins() -> None:
    """A later event time finds nothing new exactly while no window closes or begins
    in between: what the demo waits for before its last evaluation."""
    cfg = load_rules()  # ISO weeks, and months for one rule; 24 hours of lateness
    t = Traffic()
    t.split([30, 60, 40, 70, 45], CHINA_OPEN, US_CLOSED)  # 2026-W06 .. 2026-W10
    reached = datetime(2026, 3, 5, tzinfo=UTC)  # the Thursday of 2026-W10

    def tick(at: datetime) -> tuple[list[AlertMessage], list[Any]]:
        t.sums.max_ts = at
        result = ShareEngine(cfg).tick(t.sums, now=datetime(2026, 6, 1, tzinfo=UTC))
        return [a.message() for a in result.alerts], result.snapshots

    now = tick(reached)
    verdicts = []
    for hours in range(0, 24 * 8, 7):
        later = reached + timedelta(hours=hours)
        verdicts.append(same_findings(cfg, reached, later))
        if verdicts[-1]:
            assert tick(later) == now, later
    assert True in verdicts and False in verdicts
    # 2026-W10 ends on Monday 9 March: final once the watermark (a day behind) gets there.
    assert same_findings(cfg, reached, datetime(2026, 3, 8, 23, tzinfo=UTC))
    assert not same_findings(cfg, reached, datetime(2026, 3, 10, 1, tzinfo=UTC))
    assert tick(datetime(2026, 3, 10, 1, tzinfo=UTC)) != now
    # Monday 9 March also begins 2026-W11 (a window the engine holds back till then).
    assert not same_findings(
        cfg, datetime(2026, 3, 8, 23, tzinfo=UTC), datetime(2026, 3, 9, 1, tzinfo=UTC)
    )
