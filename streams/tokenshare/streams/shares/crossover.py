"""Crossovers: one value's share moving above another's within a dimension.

For each pair the windows are walked in order with a small state machine: the
confirmed leader changes only when the challenger leads by at least
`min_margin_pp` points, or has led for `confirm_windows` windows in a row.
That keeps a pair that trades places by a hair every day (flapping) from
alerting each time, while a later real reversal is an event of its own. The
first window sets the leader without an alert: a crossover has no level to
report a baseline of. A pair's `b` may be "rest" (every other value together),
and a rule's `where` shares out one segment only (China-origin open models
against the rest of the open models).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import combinations

from tokenshare.streams.shares.config import REST, CrossoverRule
from tokenshare.streams.shares.model import Alert, WindowShares, largest_first


def crossovers(series: list[WindowShares], rule: CrossoverRule) -> list[Alert]:
    """Every confirmed crossover in `series` (one dimension, measure, segment and window kind)."""
    if not series:
        return []
    dimension = series[0].dimension
    configured = [(p.a, p.b) for p in rule.pairs if p.dimension == dimension]
    alerts = []
    top = _top_pairs(series, rule, exclude=configured) if rule.top_k else []
    for a, b in [*configured, *top]:
        alerts.extend(_walk(series, a, b, rule, require_top=(a, b) not in configured))
    return alerts


def _share(shares: dict[str, float], value: str, other: str) -> float:
    """`value`'s share; "rest" is everything but `other`."""
    if value == REST:
        return sum(s for v, s in shares.items() if v != other)
    return shares.get(value, 0.0)


def _top_k(ws: WindowShares, rule: CrossoverRule) -> set[str]:
    shares = ws.shares(rule.exclude_unidentified)
    return {v for v, _ in largest_first(shares)[: rule.top_k]}


def _top_pairs(
    series: list[WindowShares], rule: CrossoverRule, exclude: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Pairs that were both among the top K of some window, in a stable order."""
    skip = {frozenset(p) for p in exclude}
    pairs: set[tuple[str, str]] = set()
    for ws in series:
        for a, b in combinations(sorted(_top_k(ws, rule)), 2):
            if frozenset((a, b)) not in skip:
                pairs.add((a, b))
    return sorted(pairs)


def _walk(
    series: list[WindowShares], a: str, b: str, rule: CrossoverRule, require_top: bool
) -> list[Alert]:
    alerts: list[Alert] = []
    leader: str | None = None  # confirmed
    challenger: str | None = None
    run = 0
    first_lead = 0  # index of the challenger's first leading window
    margin_needed = rule.min_margin_pp / 100
    for i, ws in enumerate(series):
        shares = ws.shares(rule.exclude_unidentified)
        sa, sb = _share(shares, a, b), _share(shares, b, a)
        if sa == sb:
            continue  # a tie (or neither present) changes nothing
        now = a if sa > sb else b
        if leader is None:
            leader = now
            continue
        if now == leader:
            challenger, run = None, 0
            continue
        if challenger != now:
            challenger, run, first_lead = now, 0, i
        run += 1
        margin = abs(sa - sb)
        if margin < margin_needed and run < rule.confirm_windows:
            continue
        if not require_top or {a, b} <= _top_k(ws, rule) | _top_k(series[first_lead - 1], rule):
            alerts.append(_alert(series, first_lead, i, now, leader, rule))
        leader, challenger, run = now, None, 0
    return alerts


def _alert(
    series: list[WindowShares],
    first_lead: int,
    at: int,
    winner: str,
    loser: str,
    rule: CrossoverRule,
) -> Alert:
    before, after = series[max(first_lead - 1, 0)], series[at]
    ex = rule.exclude_unidentified
    sb, sa = before.shares(ex), after.shares(ex)
    w_before, l_before = _share(sb, winner, loser), _share(sb, loser, winner)
    w_after, l_after = _share(sa, winner, loser), _share(sa, loser, winner)
    margin_pp = (w_after - l_after) * 100
    details = {
        "leader": winner,
        "overtaken": loser,
        "first_lead_window": series[first_lead].window.label,
        "window_before": before.window.label,
        "share_before": {winner: w_before, loser: l_before},
        "share_after": {winner: w_after, loser: l_after},
        "total_after": {winner: after.totals.get(winner, 0.0), loser: after.totals.get(loser, 0.0)},
        "margin_pp": round(margin_pp, 4),
        "exclude_unidentified": ex,
        "where": dict(rule.where),
    }
    text = (
        f"{after.dimension}{rule.scope}: {winner} overtook {loser} in {after.measure} share in "
        f"{after.window.label} ({w_after:.1%} vs {l_after:.1%}, "
        f"margin {margin_pp:.1f} pp; before {w_before:.1%} vs {l_before:.1%})"
    )
    explanation = (
        f"{rule.rule_name}: a lead of {rule.min_margin_pp:g} pp confirms at once, a thinner "
        f"one after {rule.confirm_windows} windows in a row"
    )
    return Alert(
        rule="crossover",
        status="final" if after.final else "provisional",
        dimension=after.dimension,
        measure=after.measure,  # type: ignore[arg-type]  # crossovers run on measures only
        window=after.window,
        subject=f"{winner}>{loser}{rule.scope}",
        text=text,
        details=details,
        severity=rule.severity,
        explanation=explanation,
        rule_name=rule.rule_name,
    )
