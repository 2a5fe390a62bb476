"""Share-shift rules: thresholds, concentration, jumps and ranks.

Each rule compares every window of a series with the one before it, so the
first window never fires, and returns the alerts of the whole history. They
are pure functions of the series: the same sums give the same alerts with the
same ids, which is what lets the engine re-run them every tick and publish
only ids it has not seen. For that reason an alert's subject names the
finding ("open above 30%", "China up") and never the numbers, which change
while a provisional window fills; the numbers go in the text and details.

Crossovers live in ``crossover``; the engine runs both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Any

from tokenshare.schema.vocabulary import Dimension, Measure, ShareRule, WindowKind
from tokenshare.streams.shares.config import (
    ConcentrationRule,
    JumpRule,
    RankRule,
    RulesConfig,
    ThresholdRule,
)
from tokenshare.streams.shares.model import Alert, WindowShares

GetSeries = Callable[[Dimension, Measure, WindowKind], list[WindowShares]]
#: Shares are ratios of float sums, so a 5-point move can come out as 4.999999...
#: points; differences this small are rounding, not data.
_EPSILON = 1e-9


def evaluate(get_series: GetSeries, cfg: RulesConfig) -> list[Alert]:
    """Alerts of every threshold, concentration, jump and rank rule, in every window kind.

    Crossovers are not included: the engine runs ``crossover.crossovers`` itself.
    """
    alerts: list[Alert] = []
    for kind in cfg.windows:
        for t in cfg.thresholds:
            alerts += thresholds(get_series(t.dimension, t.measure, kind), t)
        for c in cfg.concentration:
            alerts += concentration(get_series(c.dimension, c.measure, kind), c)
        for j in cfg.jumps:
            alerts += jumps(get_series(j.dimension, j.measure, kind), j)
        for r in cfg.ranks:
            alerts += ranks(get_series(r.dimension, r.measure, kind), r)
    return alerts


# --- the rules -------------------------------------------------------------------


def thresholds(series: list[WindowShares], rule: ThresholdRule) -> list[Alert]:
    """`rule.value`'s share rising to or above `rule.level`, or falling below it."""
    alerts = []
    ex = rule.exclude_unidentified
    for before, after in _steps(series, rule, ex):
        was, now = before.share(rule.value, ex), after.share(rule.value, ex)
        if (was >= rule.level) == (now >= rule.level):
            continue
        side, verb = ("above", "rose above") if now >= rule.level else ("below", "fell below")
        level = _level(rule.level)
        details = {
            "value": rule.value,
            "level": rule.level,
            "share_before": was,
            "share_after": now,
            "total_before": before.totals.get(rule.value, 0.0),
            "total_after": after.totals.get(rule.value, 0.0),
            **_context(before, ex),
        }
        text = (
            f"{after.dimension}: {rule.value} {verb} {level} of {after.measure} in "
            f"{after.window.label} ({_pct(was)} -> {_pct(now)})"
        )
        alerts.append(_alert("threshold", after, f"{rule.value} {side} {level}", text, details))
    return alerts


def concentration(series: list[WindowShares], rule: ConcentrationRule) -> list[Alert]:
    """The top value's share crossing `top1_level`, and the HHI crossing `hhi_level`."""
    alerts = []
    ex = rule.exclude_unidentified
    for before, after in _steps(series, rule, ex):
        if rule.top1_level is not None:
            alert = _top1_crossing(before, after, rule.top1_level, ex)
            if alert is not None:
                alerts.append(alert)
        if rule.hhi_level is not None:
            alert = _hhi_crossing(before, after, rule.hhi_level, ex)
            if alert is not None:
                alerts.append(alert)
    return alerts


def jumps(series: list[WindowShares], rule: JumpRule) -> list[Alert]:
    """Every value whose share moved by at least `rule.points` points from one window to the next.

    Values under `rule.min_share` in both windows are skipped: a tail model going
    from 0.1% to 0.4% is a fourfold rise but says nothing about the market.
    """
    alerts = []
    ex = rule.exclude_unidentified
    for before, after in _steps(series, rule, ex):
        shares_before, shares_after = before.shares(ex), after.shares(ex)
        for value in sorted(shares_before.keys() | shares_after.keys()):
            was, now = shares_before.get(value, 0.0), shares_after.get(value, 0.0)
            if max(was, now) < rule.min_share:
                continue
            delta = now - was
            if abs(delta) < rule.points / 100 - _EPSILON:
                continue
            direction = "up" if delta > 0 else "down"
            details = {
                "value": value,
                "share_before": was,
                "share_after": now,
                "delta_pp": round(delta * 100, 4),
                "points": rule.points,
                "total_before": before.totals.get(value, 0.0),
                "total_after": after.totals.get(value, 0.0),
                **_context(before, ex),
            }
            text = (
                f"{after.dimension}: {value} {direction} {abs(delta) * 100:.1f} pp to "
                f"{_pct(now)} of {after.measure} in {after.window.label} (from {_pct(was)})"
            )
            alerts.append(_alert("jump", after, f"{value} {direction}", text, details))
    return alerts


def ranks(series: list[WindowShares], rule: RankRule) -> list[Alert]:
    """The ordered top N (by share, ties by value name) differing from the previous window's."""
    alerts = []
    ex = rule.exclude_unidentified
    n = rule.top_n
    for before, after in _steps(series, rule, ex):
        top_before, top_after = _top(before, n, ex), _top(after, n, ex)
        if top_before == top_after:
            continue
        entered = [v for v in top_after if v not in top_before]
        left = [v for v in top_before if v not in top_after]
        moves = [
            {"value": v, "from": top_before.index(v) + 1, "to": i + 1}
            for i, v in enumerate(top_after)
            if v in top_before and top_before.index(v) != i
        ]
        shares = after.shares(ex)
        details = {
            "top_n": n,
            "before": top_before,
            "after": top_after,
            "entered": entered,
            "left": left,
            "moves": moves,
            "shares_after": {v: shares[v] for v in top_after},
            **_context(before, ex),
        }
        changes = (
            [f"{v} entered at #{top_after.index(v) + 1}" for v in entered]
            + [f"{v} left" for v in left]
            + [f"{m['value']} #{m['from']} -> #{m['to']}" for m in moves]
        )
        text = (
            f"{after.dimension}: top {n} by {after.measure} changed in {after.window.label}: "
            f"{'; '.join(changes)} (now {', '.join(top_after)})"
        )
        alerts.append(_alert("rank", after, f"top{n} changed", text, details))
    return alerts


# --- concentration measures ------------------------------------------------------


def _top1_crossing(
    before: WindowShares, after: WindowShares, level: float, ex: bool
) -> Alert | None:
    (leader_before, was), (leader_now, now) = _leader(before, ex), _leader(after, ex)
    if (was >= level) == (now >= level):
        return None
    side, verb = ("above", "rose above") if now >= level else ("below", "fell below")
    details = {
        "measure_kind": "top1",
        "level": level,
        "top_before": leader_before,
        "share_before": was,
        "top_after": leader_now,
        "share_after": now,
        **_context(before, ex),
    }
    text = (
        f"{after.dimension}: top value's share {verb} {_level(level)} of {after.measure} in "
        f"{after.window.label}: {leader_now} at {_pct(now)} "
        f"(before: {leader_before} at {_pct(was)})"
    )
    return _alert("concentration", after, f"top1 {side} {_level(level)}", text, details)


def _hhi_crossing(
    before: WindowShares, after: WindowShares, level: float, ex: bool
) -> Alert | None:
    was, now = hhi(before, ex), hhi(after, ex)
    if (was >= level) == (now >= level):
        return None
    side, verb = ("above", "rose above") if now >= level else ("below", "fell below")
    details = {
        "measure_kind": "hhi",
        "level": level,
        "hhi_before": was,
        "hhi_after": now,
        "top_after": _leader(after, ex)[0],
        **_context(before, ex),
    }
    text = (
        f"{after.dimension}: concentration (HHI) of {after.measure} {verb} {level:g} in "
        f"{after.window.label} ({was:.3f} -> {now:.3f})"
    )
    return _alert("concentration", after, f"hhi {side} {level:g}", text, details)


def hhi(ws: WindowShares, exclude_unidentified: bool) -> float:
    """Herfindahl-Hirschman index as a fraction: sum of squared shares (1 = one value holds all)."""
    return sum(s * s for s in ws.shares(exclude_unidentified).values())


# --- helpers ---------------------------------------------------------------------


def _steps(
    series: list[WindowShares],
    rule: ThresholdRule | ConcentrationRule | JumpRule | RankRule,
    ex: bool,
) -> Iterator[tuple[WindowShares, WindowShares]]:
    """(previous, current) pairs of consecutive windows that both have traffic to share.

    A window with nothing to share (e.g. only unidentified traffic when that is
    excluded) has no shares to compare, so neither it nor its neighbours fire.
    """
    for ws in series:
        if ws.dimension != rule.dimension or ws.measure != rule.measure:
            raise ValueError(
                f"{type(rule).__name__} on {rule.dimension}/{rule.measure} given a series "
                f"of {ws.dimension}/{ws.measure}"
            )
    for before, after in pairwise(series):
        if before.total(ex) > 0 and after.total(ex) > 0:
            yield before, after


def _top(ws: WindowShares, n: int, ex: bool) -> list[str]:
    """The n values with the largest shares, ties broken by name so the order is stable."""
    ordered = sorted(ws.shares(ex).items(), key=lambda kv: (-kv[1], kv[0]))
    return [value for value, share in ordered[:n] if share > 0]


def _leader(ws: WindowShares, ex: bool) -> tuple[str, float]:
    ordered = sorted(ws.shares(ex).items(), key=lambda kv: (-kv[1], kv[0]))
    return ordered[0]


def _context(before: WindowShares, ex: bool) -> dict[str, Any]:
    return {"window_before": before.window.label, "exclude_unidentified": ex}


def _alert(
    rule: ShareRule, after: WindowShares, subject: str, text: str, details: dict[str, Any]
) -> Alert:
    return Alert(
        rule=rule,
        status="final" if after.final else "provisional",
        dimension=after.dimension,
        measure=after.measure,
        window=after.window,
        subject=subject,
        text=text,
        details=details,
    )


def _pct(share: float) -> str:
    return f"{share:.1%}"


def _level(level: float) -> str:
    """0.3 -> "30%", 0.255 -> "25.5%": whole percents as usual, but two close levels
    never print (and so never make an alert subject) alike."""
    return f"{level * 100:g}%"
