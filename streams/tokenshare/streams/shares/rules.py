"""Share-shift rules: thresholds, concentration, jumps, ranks, ratios, volumes, catalog gaps.

Each rule walks the windows of a series in order, oldest first, and returns the
alerts of the whole history. State a rule keeps (which side of a level it is
on, for hysteresis; whether it has reported its baseline) is derived by that
walk, never stored: the same sums give the same alerts with the same ids,
which is what lets the engine re-run them every tick and publish only ids it
has not seen. For that reason an alert's subject names the finding ("open
above 30%", "China up") and never the numbers, which change while a
provisional window fills; the numbers go in the text, details and explanation.

Levels have hysteresis: a value is "above" from the first window at or over
the level until a window under the exit level (level minus a margin), so noise
around a level fires once, not at every crossing. The first window with data
sets the state; when it is already past the level the rule reports that once,
as a baseline ("reasoning is above 50%"), instead of never firing.

Crossovers live in ``crossover``; the engine runs both, then applies each
rule's budget (``engine``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from tokenshare.schema.catalog import UNIDENTIFIED
from tokenshare.schema.vocabulary import (
    AlertKind,
    AlertMeasure,
    Counter,
    Dimension,
    Measure,
    Ratio,
    ShareRule,
    WindowKind,
)
from tokenshare.streams.shares.config import (
    AnyRule,
    CatalogGapRule,
    ConcentrationRule,
    CrossoverRule,
    JumpRule,
    RankRule,
    RatioRule,
    RulesConfig,
    ThresholdRule,
    VolumeRule,
    level_label,
)
from tokenshare.streams.shares.model import Alert, WindowShares, largest_first

#: (dimension, measure or counter, window kind, segment) -> the series, oldest first.
GetSeries = Callable[[Dimension, Measure | Counter, WindowKind, str], list[WindowShares]]
#: Shares are ratios of float sums, so a 5-point move can come out as 4.999999...
#: points; differences this small are rounding, not data.
_EPSILON = 1e-9

#: Each ratio as numerator / denominator sums, times a scale.
RATIO_PARTS: dict[Ratio, tuple[Measure | Counter, Measure | Counter, float]] = {
    "prompt_tokens_per_request": ("prompt_tokens", "requests", 1.0),
    "completion_tokens_per_request": ("completion_tokens", "requests", 1.0),
    "tool_call_share": ("tool_call_requests", "requests", 1.0),
    "reasoning_token_share": ("reasoning_tokens", "completion_tokens", 1.0),
    "cache_hit_share": ("cached_tokens", "prompt_tokens", 1.0),
    "spend_per_mtok": ("spend_usd", "tokens", 1e6),
    # A value's spend share over its token share: computed from the two shares.
    "spend_over_token_share": ("spend_usd", "tokens", 1.0),
}


def evaluate(get_series: GetSeries, cfg: RulesConfig, keys: set[str] | None = None) -> list[Alert]:
    """Alerts of every rule but crossovers, in each of its window kinds, before budgets.

    `keys`: only the rules under these evaluation keys (None: all)."""
    alerts: list[Alert] = []
    for rule in cfg.all_rules():
        if isinstance(rule, CrossoverRule) or (keys is not None and rule.key not in keys):
            continue
        for kind in cfg.windows_of(rule):
            alerts += evaluate_rule(get_series, rule, kind)
    return alerts


def evaluate_rule(get_series: GetSeries, rule: AnyRule, kind: WindowKind) -> list[Alert]:
    seg = rule.segment
    if isinstance(rule, ThresholdRule):
        return thresholds(get_series(rule.dimension, rule.measure, kind, seg), rule)
    if isinstance(rule, ConcentrationRule):
        return concentration(get_series(rule.dimension, rule.measure, kind, seg), rule)
    if isinstance(rule, JumpRule):
        return jumps(get_series(rule.dimension, rule.measure, kind, seg), rule)
    if isinstance(rule, RankRule):
        return ranks(get_series(rule.dimension, rule.measure, kind, seg), rule)
    if isinstance(rule, RatioRule):
        return ratios(get_series, rule, kind)
    if isinstance(rule, VolumeRule):
        return volumes(get_series(rule.series_dimension, rule.measure, kind, seg), rule)
    if isinstance(rule, CatalogGapRule):
        return catalog_gaps(get_series, rule, kind)
    return []  # crossovers: ``crossover.crossovers``


# --- levels with hysteresis ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """One change of side found by ``walk``: at window `index`, from `was` to `now`."""

    index: int
    kind: AlertKind  # baseline or change
    above: bool
    was: float | None
    now: float

    @property
    def side(self) -> str:
        return "above" if self.above else "below"


def walk(points: list[float], enter: float, exit_: float, baseline: bool) -> list[Step]:
    """Sides of a level over `points`: "above" from a point >= `enter` until one < `exit_`.

    The first point sets the side; when it is above, a baseline step reports it.
    Ties at `enter` count as above (the level is reached)."""
    steps: list[Step] = []
    above: bool | None = None
    for i, x in enumerate(points):
        if above is None:
            above = x >= enter - _EPSILON
            if above and baseline:
                steps.append(Step(i, "baseline", True, None, x))
            continue
        if above and x < exit_ - _EPSILON:
            above = False
            steps.append(Step(i, "change", False, points[i - 1], x))
        elif not above and x >= enter - _EPSILON:
            above = True
            steps.append(Step(i, "change", True, points[i - 1], x))
    return steps


def walk_below(points: list[float], level: float, exit_: float, baseline: bool) -> list[Step]:
    """The mirror of ``walk``: "below" from a point <= `level` until one > `exit_`."""
    steps = walk([-x for x in points], -level, -exit_, baseline)
    return [
        Step(s.index, s.kind, s.above, None if s.was is None else -s.was, -s.now) for s in steps
    ]


def walk_levels(
    points: list[float],
    above: float | None,
    below: float | None,
    margin_pct: float,
    baseline: bool,
) -> Iterator[tuple[bool, float, float, list[Step]]]:
    """(upper?, level, exit level, steps) for an upper level (``walk``) and a lower one
    (``walk_below``), each left again `margin_pct` percent of the level past it."""
    m = margin_pct / 100
    if above is not None:
        exit_ = above * (1 - m)
        yield True, above, exit_, walk(points, above, exit_, baseline)
    if below is not None:
        exit_ = below * (1 + m)
        yield False, below, exit_, walk_below(points, below, exit_, baseline)


# --- the rules -------------------------------------------------------------------


def thresholds(series: list[WindowShares], rule: ThresholdRule) -> list[Alert]:
    """`rule.value`'s share reaching `rule.level`, or falling under it by the margin."""
    ex = rule.exclude_unidentified
    active = _active(series, ex)
    points = [ws.share(rule.value, ex) for ws in active]
    level = level_label(rule.level)
    exit_ = rule.level - rule.margin_pp / 100
    explanation = (
        f"{rule.rule_name}: above from {level}, back below under {level_label(exit_)} "
        f"(margin {rule.margin_pp:g} pp)"
    )
    alerts = []
    for step in walk(points, rule.level, exit_, rule.baseline):
        after = active[step.index]
        details = {
            "value": rule.value,
            "level": rule.level,
            "exit_level": round(exit_, 6),
            "share_before": step.was,
            "share_after": step.now,
            "total_after": after.totals.get(rule.value, 0.0),
            **_context(rule, active, step.index, ex),
        }
        what = f"{after.dimension}{rule.scope}: {rule.value}"
        if step.kind == "baseline":
            text = (
                f"{what} is above {level} of {after.measure} in {after.window.label} "
                f"({_pct(step.now)}) at the first evaluation"
            )
            subject = f"{rule.value} above {level}{rule.scope} (baseline)"
        else:
            verb = "rose above" if step.above else "fell below"
            text = (
                f"{what} {verb} {level} of {after.measure} in {after.window.label} "
                f"({_pct(step.was or 0)} -> {_pct(step.now)})"
            )
            subject = f"{rule.value} {step.side} {level}{rule.scope}"
        alerts.append(
            _alert(rule, "threshold", after, subject, text, details, step.kind, explanation)
        )
    return alerts


def concentration(series: list[WindowShares], rule: ConcentrationRule) -> list[Alert]:
    """The top value's share crossing `top1_level`, and the HHI crossing `hhi_level`."""
    ex = rule.exclude_unidentified
    active = _active(series, ex)
    exit_gap = rule.margin_pp / 100
    alerts = []
    if rule.top1_level is not None:
        leaders = [_leader(ws, ex) for ws in active]
        level = level_label(rule.top1_level)
        explanation = (
            f"{rule.rule_name}: the largest share against {level}, margin {rule.margin_pp:g} pp"
        )
        for step in walk(
            [s for _, s in leaders], rule.top1_level, rule.top1_level - exit_gap, rule.baseline
        ):
            after = active[step.index]
            leader, share = leaders[step.index]
            details = {
                "measure_kind": "top1",
                "level": rule.top1_level,
                "top_after": leader,
                "share_after": share,
                "share_before": step.was,
                **_context(rule, active, step.index, ex),
            }
            what = f"{after.dimension}{rule.scope}"
            if step.kind == "baseline":
                text = (
                    f"{what}: the top value holds more than {level} of {after.measure} in "
                    f"{after.window.label} at the first evaluation: {leader} at {_pct(share)}"
                )
                subject = f"top1 above {level}{rule.scope} (baseline)"
            else:
                if step.above:
                    text = (
                        f"{what}: {leader} took more than {level} of {after.measure} in "
                        f"{after.window.label} ({_pct(share)})"
                    )
                else:
                    text = (
                        f"{what}: no value holds {level} of {after.measure} any more in "
                        f"{after.window.label} (top: {leader} at {_pct(share)})"
                    )
                subject = f"top1 {step.side} {level}{rule.scope}"
            alerts.append(_concentration(rule, after, subject, text, details, step, explanation))
    if rule.hhi_level is not None:
        points = [hhi(ws, ex) for ws in active]
        lvl = rule.hhi_level
        explanation = f"{rule.rule_name}: HHI (sum of squared shares) against {lvl:g}"
        for step in walk(points, lvl, lvl - exit_gap, rule.baseline):
            after = active[step.index]
            details = {
                "measure_kind": "hhi",
                "level": lvl,
                "hhi_before": step.was,
                "hhi_after": step.now,
                "top_after": _leader(after, ex)[0],
                **_context(rule, active, step.index, ex),
            }
            what = f"{after.dimension}{rule.scope}: concentration (HHI) of {after.measure}"
            if step.kind == "baseline":
                text = f"{what} is above {lvl:g} in {after.window.label} ({step.now:.3f})"
                subject = f"hhi above {lvl:g}{rule.scope} (baseline)"
            else:
                verb = "rose above" if step.above else "fell below"
                text = (
                    f"{what} {verb} {lvl:g} in {after.window.label} "
                    f"({step.was or 0:.3f} -> {step.now:.3f})"
                )
                subject = f"hhi {step.side} {lvl:g}{rule.scope}"
            alerts.append(_concentration(rule, after, subject, text, details, step, explanation))
    return alerts


def _concentration(
    rule: ConcentrationRule,
    after: WindowShares,
    subject: str,
    text: str,
    details: dict[str, Any],
    step: Step,
    explanation: str,
) -> Alert:
    return _alert(rule, "concentration", after, subject, text, details, step.kind, explanation)


def jumps(series: list[WindowShares], rule: JumpRule) -> list[Alert]:
    """One alert per window in which shares moved by at least `rule.points` points.

    A gain is somebody's loss: China up 6 points and US down 6 is one movement, so
    every mover of the window goes into one alert. Values under `rule.min_share` in
    both windows are skipped: a tail model going from 0.1% to 0.4% says nothing."""
    alerts = []
    ex = rule.exclude_unidentified
    active = _active(series, ex)
    for i in range(1, len(active)):
        before, after = active[i - 1], active[i]
        shares_before, shares_after = before.shares(ex), after.shares(ex)
        moves = []
        for value in sorted(shares_before.keys() | shares_after.keys()):
            was, now = shares_before.get(value, 0.0), shares_after.get(value, 0.0)
            if max(was, now) < rule.min_share:
                continue
            delta = now - was
            if abs(delta) >= rule.points / 100 - _EPSILON:
                moves.append((value, was, now, delta))
        if not moves:
            continue
        moves.sort(key=lambda m: (-abs(m[3]), m[0]))
        details = {
            "points": rule.points,
            "moves": [
                {"value": v, "share_before": w, "share_after": n, "delta_pp": round(d * 100, 4)}
                for v, w, n, d in moves
            ],
            **_context(rule, active, i, ex),
        }
        said = ", ".join(
            f"{v} {'up' if d > 0 else 'down'} {abs(d) * 100:.1f} pp to {_pct(n)}"
            for v, _, n, d in moves
        )
        text = f"{after.dimension}{rule.scope}: {said} of {after.measure} in {after.window.label}"
        alerts.append(
            _alert(
                rule,
                "jump",
                after,
                f"shift{rule.scope}",
                text,
                details,
                "change",
                f"{rule.rule_name}: shares moving {rule.points:g} pp or more in one window",
            )
        )
    return alerts


def ranks(series: list[WindowShares], rule: RankRule) -> list[Alert]:
    """The ordered top N (by share, ties by value name) differing from the previous window's."""
    alerts = []
    ex = rule.exclude_unidentified
    n = rule.top_n
    active = _active(series, ex)
    for i in range(1, len(active)):
        before, after = active[i - 1], active[i]
        top_before, top_after = _top(before, n, ex), _top(after, n, ex)
        if top_before == top_after:
            continue
        entered = [v for v in top_after if v not in top_before]
        left = [v for v in top_before if v not in top_after]
        moves = [
            {"value": v, "from": top_before.index(v) + 1, "to": j + 1}
            for j, v in enumerate(top_after)
            if v in top_before and top_before.index(v) != j
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
            **_context(rule, active, i, ex),
        }
        changes = (
            [f"{v} entered at #{top_after.index(v) + 1}" for v in entered]
            + [f"{v} left" for v in left]
            + [f"{m['value']} #{m['from']} -> #{m['to']}" for m in moves]
        )
        text = (
            f"{after.dimension}{rule.scope}: top {n} by {after.measure} changed in "
            f"{after.window.label}: {'; '.join(changes)} (now {', '.join(top_after)})"
        )
        alerts.append(
            _alert(
                rule,
                "rank",
                after,
                f"top{n} changed{rule.scope}",
                text,
                details,
                "change",
                f"{rule.rule_name}: the ordered top {n} differs from the previous window's",
            )
        )
    return alerts


def ratios(get_series: GetSeries, rule: RatioRule, kind: WindowKind) -> list[Alert]:
    """The ratio of one value (or of the whole segment) against `above` and `below`."""
    num, den, scale = RATIO_PARTS[rule.ratio]
    dimension = rule.series_dimension
    ex = rule.exclude_unidentified
    top = {ws.window: ws for ws in get_series(dimension, num, kind, rule.segment)}
    bottom = get_series(dimension, den, kind, rule.segment)
    windows: list[WindowShares] = []
    points: list[float] = []
    for ws in bottom:
        n = top.get(ws.window)
        value = _ratio_value(rule, n, ws, scale, ex)
        if value is not None:
            windows.append(ws)
            points.append(value)
    alerts = []
    levels = walk_levels(points, rule.above, rule.below, rule.margin_pct, rule.baseline)
    for above, level, exit_, steps in levels:
        for step in steps:
            after = windows[step.index]
            of = f"{rule.value}'s" if rule.value else "the"
            shown = _fmt(rule.ratio, step.now)
            side = "above" if step.above == above else "below"
            word = "above" if above else "under"
            where = f"{after.dimension}{rule.scope}" if rule.value else f"all{rule.scope}"
            subject = f"{rule.value or 'all'} {rule.ratio} {side} {level:g}{rule.scope}"
            if step.kind == "baseline":
                text = (
                    f"{where}: {of} {rule.ratio} is {word} {level:g} in "
                    f"{after.window.label} ({shown}) at the first evaluation"
                )
                subject += " (baseline)"
            else:
                verb = (
                    ("rose above" if step.above else "fell back under")
                    if above
                    else ("fell under" if step.above else "rose back above")
                )
                text = (
                    f"{where}: {of} {rule.ratio} {verb} {level:g} in {after.window.label} "
                    f"({_fmt(rule.ratio, step.was or 0)} -> {shown})"
                )
            details = {
                "ratio": rule.ratio,
                "value": rule.value,
                "level": level,
                "exit_level": exit_,
                "ratio_before": step.was,
                "ratio_after": step.now,
                **_context(rule, windows, step.index, ex),
            }
            alerts.append(
                _alert(
                    rule,
                    "ratio",
                    after,
                    subject,
                    text,
                    details,
                    step.kind,
                    f"{rule.rule_name}: {rule.ratio} = {_ratio_words(rule.ratio)}; "
                    f"{word} {level:g}, hysteresis {rule.margin_pct:g}%",
                    measure=rule.ratio,
                    dimension=dimension,
                )
            )
    return alerts


def _ratio_value(
    rule: RatioRule, num: WindowShares | None, den: WindowShares, scale: float, ex: bool
) -> float | None:
    if num is None:
        num = WindowShares(den.window, den.dimension, "tokens", {}, den.final, den.complete)
    if rule.ratio == "spend_over_token_share":
        assert rule.value is not None
        token_share = den.share(rule.value, ex)
        return num.share(rule.value, ex) / token_share if token_share > 0 else None
    if rule.value is not None:
        d = den.totals.get(rule.value, 0.0)
        return num.totals.get(rule.value, 0.0) / d * scale if d > 0 else None
    d = den.total(ex)
    return num.total(ex) / d * scale if d > 0 else None


def volumes(series: list[WindowShares], rule: VolumeRule) -> list[Alert]:
    """A measure's total against absolute levels, and its change against the window before."""

    def total(ws: WindowShares) -> float:
        return ws.totals.get(rule.value, 0.0) if rule.value else ws.total()

    alerts: list[Alert] = []
    of = f"{rule.dimension}={rule.value}" if rule.value else "all traffic"
    of += rule.scope
    points = [total(ws) for ws in series]
    # Volumes have no baseline: a total is only news when it passes a level.
    for above, level, _, steps in walk_levels(
        points, rule.above, rule.below, rule.margin_pct, False
    ):
        for step in steps:
            after = series[step.index]
            side = "above" if step.above == above else "below"
            text = (
                f"{of}: {after.measure} {'rose above' if side == 'above' else 'fell under'} "
                f"{_short(level)} in {after.window.label} ({_short(step.was or 0)} -> "
                f"{_short(step.now)})"
            )
            level_details: dict[str, Any] = {
                "level": level,
                "total_before": step.was,
                "total_after": step.now,
            }
            alerts.append(
                _alert(
                    rule,
                    "volume",
                    after,
                    f"{rule.value or 'all'} {side} {_short(level)}{rule.scope}",
                    text,
                    level_details,
                    "change",
                    f"{rule.rule_name}: total {after.measure} against {_short(level)}",
                    dimension=series[0].dimension,
                )
            )
    complete = [ws for ws in series if ws.complete]
    for before, after in pairwise(complete):
        was, now = total(before), total(after)
        if was <= 0:
            continue
        change = (now / was - 1) * 100
        if rule.rise_pct is not None and change >= rule.rise_pct - _EPSILON:
            direction, limit = "rise", rule.rise_pct
        elif rule.drop_pct is not None and change <= -rule.drop_pct + _EPSILON:
            direction, limit = "drop", rule.drop_pct
        else:
            continue
        text = (
            f"{of}: {after.measure} {'rose' if direction == 'rise' else 'dropped'} "
            f"{abs(change):.0f}% in {after.window.label} against {before.window.label} "
            f"({_short(was)} -> {_short(now)})"
        )
        details: dict[str, Any] = {
            "total_before": was,
            "total_after": now,
            "change_pct": round(change, 4),
            "window_before": before.window.label,
        }
        alerts.append(
            _alert(
                rule,
                "volume",
                after,
                f"{rule.value or 'all'} {direction}{rule.scope}",
                text,
                details,
                "change",
                f"{rule.rule_name}: a {direction} of {limit:g}% or more against the previous "
                "complete window",
                dimension=series[0].dimension,
            )
        )
    return sorted(alerts, key=lambda a: a.window)


def catalog_gaps(get_series: GetSeries, rule: CatalogGapRule, kind: WindowKind) -> list[Alert]:
    """Traffic of models the catalog lacks (weights unidentified), or of labs it does not
    know (origin unidentified), passing its level; one alert names the top unknowns."""
    alerts: list[Alert] = []
    checks: list[tuple[str, float, Dimension, str]] = []
    if rule.level is not None:
        checks.append(("models missing from the catalog", rule.level, "weights", "models"))
    if rule.lab_level is not None:
        checks.append(("labs unknown to the catalog", rule.lab_level, "origin_bloc", "labs"))
    for what, level, dimension, tag in checks:
        series = [ws for ws in get_series(dimension, rule.measure, kind, "") if ws.total() > 0]
        points = [ws.share(UNIDENTIFIED) for ws in series]
        segment = f"{dimension}={UNIDENTIFIED}"
        shown = level_label(level)
        models = {ws.window: ws for ws in get_series("model", rule.measure, kind, segment)}
        authors = {ws.window: ws for ws in get_series("author", rule.measure, kind, segment)}
        for step in walk(points, level, level - rule.margin_pp / 100, rule.baseline):
            if not step.above:
                continue  # the gap closing is no news; the rule re-arms
            after = series[step.index]
            whole = after.total()
            slugs = _top_of(models.get(after.window), rule.top, whole)
            labs = _top_of(authors.get(after.window), rule.top, whole)
            named = ", ".join(f"{v} {_pct(s)}" for v, s in slugs) or "none"
            lab_names = ", ".join(f"{v} {_pct(s)}" for v, s in labs) or "none"
            text = (
                f"catalog gap: {_pct(step.now)} of {after.measure} in {after.window.label} "
                f"comes from {what} (level {shown}): models {named}; labs {lab_names}. "
                "List them with `tokenshare catalog gaps`"
            )
            details = {
                "level": level,
                "share": step.now,
                "share_before": step.was,
                "unknown_models": [{"model": v, "share": s} for v, s in slugs],
                "unknown_labs": [{"lab": v, "share": s} for v, s in labs],
            }
            alerts.append(
                _alert(
                    rule,
                    "catalog_gap",
                    after,
                    f"catalog gap ({tag}) above {shown}",
                    text,
                    details,
                    step.kind,
                    f"{rule.rule_name}: share of {after.measure} the catalog cannot place "
                    f"against {shown}; re-arms {rule.margin_pp:g} pp under it",
                    dimension=dimension,
                )
            )
    return alerts


def _top_of(ws: WindowShares | None, n: int, whole: float) -> list[tuple[str, float]]:
    if ws is None or whole <= 0:
        return []
    ordered = largest_first(ws.totals)
    # Shares that print as 0.0% name nothing worth adding to the catalog.
    return [(v, t / whole) for v, t in ordered[:n] if t / whole >= 0.0005]


def hhi(ws: WindowShares, exclude_unidentified: bool) -> float:
    """Herfindahl-Hirschman index as a fraction: sum of squared shares (1 = one value holds all)."""
    return sum(s * s for s in ws.shares(exclude_unidentified).values())


# --- helpers ---------------------------------------------------------------------


def _active(series: list[WindowShares], ex: bool) -> list[WindowShares]:
    """The windows that have traffic to share (e.g. not only unidentified when excluded)."""
    return [ws for ws in series if ws.total(ex) > 0]


def _top(ws: WindowShares, n: int, ex: bool) -> list[str]:
    """The n values with the largest shares, ties broken by name so the order is stable."""
    return [value for value, share in largest_first(ws.shares(ex))[:n] if share > 0]


def _leader(ws: WindowShares, ex: bool) -> tuple[str, float]:
    return largest_first(ws.shares(ex))[0]


def _context(rule: AnyRule, active: list[WindowShares], i: int, ex: bool) -> dict[str, Any]:
    """The details every rule on shares adds: its segment, the window before, and
    whether unidentified traffic was left out."""
    before = active[i - 1].window.label if i > 0 else None
    return {"where": dict(rule.where), "window_before": before, "exclude_unidentified": ex}


def _alert(
    rule: AnyRule,
    kind_of_rule: ShareRule,
    after: WindowShares,
    subject: str,
    text: str,
    details: dict[str, Any],
    kind: AlertKind = "change",
    explanation: str = "",
    *,
    measure: AlertMeasure | None = None,
    dimension: Dimension | None = None,
) -> Alert:
    return Alert(
        rule=kind_of_rule,
        status="final" if after.final else "provisional",
        dimension=dimension or after.dimension,
        measure=measure or _measure(after),
        window=after.window,
        subject=subject,
        text=text,
        details=details,
        severity="info" if kind == "baseline" else rule.severity,
        kind=kind,
        explanation=explanation,
        rule_name=rule.rule_name,
    )


def _measure(ws: WindowShares) -> Measure:
    m = ws.measure
    assert m in ("tokens", "prompt_tokens", "completion_tokens", "requests", "spend_usd")
    return m


def _ratio_words(ratio: Ratio) -> str:
    num, den, scale = RATIO_PARTS[ratio]
    if ratio == "spend_over_token_share":
        return "spend share / token share"
    return f"{num} / {den}" + (f" x {scale:g}" if scale != 1 else "")


def _fmt(ratio: Ratio, x: float) -> str:
    if ratio.endswith("_share") and ratio != "spend_over_token_share":
        return _pct(x)
    if ratio == "spend_per_mtok":
        return f"${x:.3f}/M"
    return f"{x:,.2f}"


def _pct(share: float) -> str:
    return f"{share:.1%}"


def _short(x: float) -> str:
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= size:
            return f"{x / size:.3g}{unit}"
    return f"{x:.3g}"
