"""Backtest: the rules over stored history, without publishing anything.

What a team runs before deploying a rules file: how many alerts each rule
would have fired, which, and whether a rule fires so often (in more than a set
share of its windows) that it would be muted. It is the engine's own
evaluation (``ShareEngine.tick`` on a fresh ledger), so what it shows is what
the share stage would publish.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from tokenshare.streams.shares.config import RulesConfig
from tokenshare.streams.shares.engine import ShareEngine
from tokenshare.streams.shares.model import Alert
from tokenshare.streams.shares.windows import DaySums, windows


@dataclass(frozen=True, slots=True)
class RuleReport:
    name: str
    alerts: list[Alert]
    windows: int  # windows with data the rule was evaluated in
    windows_firing: int

    @property
    def firing_share(self) -> float:
        return self.windows_firing / self.windows if self.windows else 0.0

    @property
    def final(self) -> int:
        return sum(a.status == "final" for a in self.alerts)


@dataclass(slots=True)
class Backtest:
    rules: list[RuleReport] = field(default_factory=list)
    flag_share: float = 0.25
    first: date | None = None
    last: date | None = None
    unseen: list[str] = field(default_factory=list)

    @property
    def alerts(self) -> list[Alert]:
        return sorted(
            (a for r in self.rules for a in r.alerts), key=lambda a: (a.window.end, a.rule_name)
        )

    @property
    def noisy(self) -> list[RuleReport]:
        """Rules firing in more than `flag_share` of their windows."""
        return [r for r in self.rules if r.firing_share > self.flag_share]


def between(sums: DaySums, first: date | None, last: date | None) -> DaySums:
    """The days from `first` to `last` (both included; None: open-ended)."""

    def keep(day: date) -> bool:
        return (first is None or day >= first) and (last is None or day <= last)

    out = DaySums(max_ts=sums.max_ts)
    for segment, cells in [("", sums.cells), *sums.segments.items()]:
        for dimension, values in cells.items():
            for value, by_day in values.items():
                for day, cell in by_day.items():
                    if keep(day):
                        out.add(dimension, value, day, cell, segment)
    if last is not None and out.max_ts is not None:
        out.max_ts = min(out.max_ts, datetime.combine(last + timedelta(days=1), time(), UTC))
    return out


def backtest(
    rules: RulesConfig,
    sums: DaySums,
    first: date | None = None,
    last: date | None = None,
    flag_share: float = 0.25,
) -> Backtest:
    """Every alert the rules would fire over the days from `first` to `last`."""
    part = between(sums, first, last)
    engine = ShareEngine(rules)
    found = engine.tick(part).alerts
    span = part.days()
    report = Backtest(
        flag_share=flag_share,
        first=span[0] if span else None,
        last=span[1] if span else None,
        unseen=engine.unseen_values(part),
    )
    for rule in rules.all_rules():
        mine = [a for a in found if a.rule_name == rule.rule_name]
        evaluated = 0
        if span is not None:
            evaluated = sum(len(windows(kind, *span)) for kind in rules.windows_of(rule))
        firing = len({a.window for a in mine})
        report.rules.append(RuleReport(rule.rule_name, mine, evaluated, firing))
    return report
