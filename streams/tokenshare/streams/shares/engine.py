"""The share engine: day sums in, new alerts and share snapshots out.

Each tick reads the per-day partial sums (``segment_rollup`` in ClickHouse,
filled by a materialized view from the de-duplicated raw rows, so global
across every partition and worker and exact under redelivery), derives all
windows, runs every rule over the whole history, applies each rule's budget
(at most N alerts per rule and window, the rest in one digest), and keeps
only what the ledger has not seen. The ledger is the alerts topic itself: an
alert is "fired" once the broker acknowledged it, so a restart or a new
leader reads the topic back and fires nothing twice. Evaluation is a pure
function of the sums: rule state (hysteresis sides, baselines, budgets) is
re-derived by replaying the windows in order, so a replay in event time
produces the same alerts, with the same ids.

The seam for evaluating in parts (e.g. one evaluator per dimension):

* every rule has evaluation keys (``RulesConfig.evaluation_keys()``: a dimension, or a
  stable name such as ``catalog_gap``; a crossover on several dimensions has
  one key per dimension);
* ``RulesConfig.dimensions_for(keys)`` and ``RulesConfig.segments_for(keys)``
  name the dimensions and segments those rules read, and
  ``load_day_sums(..., dimensions=..., segments=...)`` loads only their sums;
* ``ShareEngine.tick(sums, keys=...)`` evaluates only the rules under `keys`,
  and snapshots only the dimensions among them.

Evaluators owning disjoint keys find disjoint alerts, and together exactly
the alerts of one evaluator owning every key (ids included), because no
rule's state depends on another rule's. ``ShareEngine.unseen_values(sums)``
lists rule values the data never had, with a did-you-mean, to log at start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tokenshare.schema.outputs import ShareSnapshot, ShareValue, Window
from tokenshare.schema.vocabulary import (
    DIMENSIONS,
    MEASURES,
    SEGMENT_DIMENSIONS,
    SEVERITIES,
    SUMS,
    Counter,
    Dimension,
    Measure,
    Status,
    WindowKind,
)
from tokenshare.streams.shares.config import RulesConfig, unseen_values
from tokenshare.streams.shares.crossover import crossovers
from tokenshare.streams.shares.model import Alert, WindowShares
from tokenshare.streams.shares.rules import evaluate as evaluate_rules
from tokenshare.streams.shares.windows import (
    DaySums,
    is_final,
    series,
    window_shares,
    windows,
)
from tokenshare.watermark import event_time_reached, read_progress, watermark

Query = Callable[[str], list[list[Any]]]

# One sum per measure and counter, in SUMS order (the order of DaySums' cells).
DAY_SUMS_SQL = (
    "SELECT segment_dimension, segment_value, dimension, value, day, "
    + ", ".join(f"sum({m})" for m in SUMS)
    + " FROM {db}.segment_rollup{where} "
    "GROUP BY segment_dimension, segment_value, dimension, value, day"
)


def load_day_sums(
    query: Query,
    database: str,
    idle_seconds: float = 30.0,
    dimensions: Iterable[str] | None = None,
    segments: Iterable[str] | None = None,
) -> DaySums:
    """The rollup as DaySums (small: segments x dimensions x values x days).

    `dimensions`: only these (``RulesConfig.dimensions_for``); None: all.
    `segments`: only these segments ("" and e.g. "weights=open",
    ``RulesConfig.segments_for``); None: every segment, ten times the rows of
    all traffic alone, so evaluators pass what their rules use.
    `max_ts` is the event time every active partition has reached, by the
    rule the store counts late rows with (``tokenshare.watermark``): partitions
    idle for longer than `idle_seconds` are left out.
    """
    where = ""
    if dimensions is not None:
        names = sorted(set(dimensions) & set(DIMENSIONS))  # an allowlist: safe to inline
        where = " WHERE dimension IN (" + ", ".join(f"'{d}'" for d in names) + ")"
        if not names:
            where = " WHERE 0"
    if segments is not None:
        wanted = {"('', '')"}
        for segment in segments:
            dimension, _, value = segment.partition("=")
            if segment and dimension in SEGMENT_DIMENSIONS:  # an allowlist: safe to inline
                wanted.add(f"('{dimension}', {_quoted(value)})")
        clause = f"(segment_dimension, segment_value) IN ({', '.join(sorted(wanted))})"
        where = f"{where} AND {clause}" if where else f" WHERE {clause}"
    sums = DaySums()
    for seg_dim, seg_value, dimension, value, day, *measures in query(
        DAY_SUMS_SQL.format(db=database, where=where)
    ):
        segment = f"{seg_dim}={seg_value}" if seg_dim else ""
        sums.add(str(dimension), str(value), _as_date(day), (float(m) for m in measures), segment)
    sums.max_ts = event_time_reached(read_progress(query, database), idle_seconds)
    return sums


def _quoted(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


@dataclass(slots=True)
class TickResult:
    alerts: list[Alert] = field(default_factory=list)
    snapshots: list[ShareSnapshot] = field(default_factory=list)
    watermark: datetime | None = None


@dataclass(slots=True)
class ShareEngine:
    """Stateless but for what it has published: fired alert ids and snapshot versions."""

    rules: RulesConfig
    fired: set[str] = field(default_factory=set)
    _final_windows: set[Window] | None = None  # final at the previous tick (None: first tick)
    _snapshot_versions: dict[tuple[Any, ...], int] = field(default_factory=dict)

    def remember(self, alert_ids: Iterable[str]) -> None:
        """Record alerts the ledger holds (read back from the alerts topic)."""
        self.fired.update(alert_ids)

    def tick(
        self, sums: DaySums, now: datetime | None = None, keys: Iterable[str] | None = None
    ) -> TickResult:
        """New alerts and snapshots; `keys`: only the rules under these evaluation keys."""
        wanted = None if keys is None else set(keys)
        mark = watermark(sums.max_ts, self.rules.lateness)
        cache: dict[tuple[Dimension, Measure | Counter, WindowKind, str], list[WindowShares]] = {}

        def get_series(
            dimension: Dimension, measure: Measure | Counter, kind: WindowKind, segment: str = ""
        ) -> list[WindowShares]:
            key = (dimension, measure, kind, segment)
            if key not in cache:
                cache[key] = [
                    ws
                    for ws in series(sums, dimension, measure, kind, mark, segment)
                    if begun(ws.window, sums.max_ts)
                ]
            return cache[key]

        found = list(evaluate_rules(get_series, self.rules, wanted))
        for rule in self.rules.crossover:
            for kind in self.rules.windows_of(rule):
                for dimension in rule.dimensions:
                    if wanted is None or dimension in wanted:
                        found.extend(
                            crossovers(
                                get_series(dimension, rule.measure, kind, rule.segment), rule
                            )
                        )
        result = TickResult(watermark=mark)
        for alert in sorted(
            apply_budgets(found, self.rules),
            key=lambda a: (a.window.end, a.window.kind, a.rule, a.subject),
        ):
            alert = self._late(alert)
            if alert.alert_id in self.fired or _final_twin(alert) in self.fired:
                continue
            result.alerts.append(alert)
        dimensions = DIMENSIONS if wanted is None else [d for d in DIMENSIONS if d in wanted]
        result.snapshots = self._snapshots(sums, mark, now or datetime.now(UTC), dimensions)
        span = sums.days()
        self._final_windows = (
            {
                w
                for kind in self.rules.window_kinds()
                for w in windows(kind, *span)
                if is_final(w, mark)
            }
            if span
            else set()
        )
        return result

    def unseen_values(self, sums: DaySums) -> list[str]:
        """Rule values the data never had (each with a did-you-mean): those rules cannot fire."""
        return unseen_values(self.rules, sums.values_seen())

    def _late(self, alert: Alert) -> Alert:
        """A final alert about a window that was already final: late data changed it."""
        if (
            alert.status != "final"
            or self._final_windows is None
            or alert.window not in self._final_windows
        ):
            return alert
        return replace(alert, status="late_correction", text="late data: " + alert.text)

    def _snapshots(
        self,
        sums: DaySums,
        mark: datetime | None,
        now: datetime,
        dimensions: Iterable[Dimension] = DIMENSIONS,
    ) -> list[ShareSnapshot]:
        """The open window of each kind, and windows that closed since the last tick.

        Only what changed since it was last published; a restart publishes the
        latest windows again (the snapshot table keeps one row per window).
        """
        span = sums.days()
        if span is None:
            return []
        out = []
        dimensions = list(dimensions)
        for kind in self.rules.window_kinds():
            all_windows = windows(kind, *span)
            wanted = [all_windows[-1]]
            closed = [w for w in all_windows if is_final(w, mark)]
            if self._final_windows is None:
                wanted += closed[-1:]
            else:
                wanted += [w for w in closed if w not in self._final_windows]
            for window in dict.fromkeys(wanted):
                for dimension in dimensions:
                    for measure in MEASURES:
                        ws = window_shares(sums, dimension, measure, window, mark)
                        if ws is None:
                            continue
                        key = (kind, window.start, dimension, measure, ws.final)
                        version = hash(tuple(sorted(ws.totals.items())))
                        if self._snapshot_versions.get(key) != version:
                            self._snapshot_versions[key] = version
                            out.append(snapshot(ws, now))
        return out


def begun(window: Window, reached: datetime | None) -> bool:
    """Whether a tick evaluates `window` yet: one that starts after the event time every
    active partition has reached holds only what faster partitions sent."""
    return reached is None or window.start <= reached.date()


def same_findings(rules: RulesConfig, reached: datetime, later: datetime) -> bool:
    """Whether a tick over the same sums finds the same when the event time reached is
    `later` as when it is `reached`: the same windows final and the same ones begun.
    Then a share stage that evaluated at `reached` has nothing left to find at `later`
    (the demo waits for no more than that)."""
    mark, later_mark = watermark(reached, rules.lateness), watermark(later, rules.lateness)
    # A month before the earlier watermark: any window ending after it starts after this.
    first = (reached - rules.lateness - timedelta(days=31)).date()
    return all(
        is_final(w, mark) == is_final(w, later_mark) and begun(w, reached) == begun(w, later)
        for kind in rules.window_kinds()
        for w in windows(kind, first, later.date())
    )


def apply_budgets(alerts: Iterable[Alert], rules: RulesConfig) -> list[Alert]:
    """At most the rule's budget of alerts per rule, window and status; the rest in a digest.

    Kept first: the most severe, then baselines, then by subject, so the choice is
    the same at every tick. The digest lists every alert it stands for."""
    budgets = {rule.rule_name: rules.budget_of(rule) for rule in rules.all_rules()}
    groups: dict[tuple[str, Window, Status], list[Alert]] = {}
    for alert in alerts:
        groups.setdefault((alert.rule_name, alert.window, alert.status), []).append(alert)
    out: list[Alert] = []
    for (name, window, _), group in groups.items():
        group.sort(key=lambda a: (-SEVERITIES.index(a.severity), a.kind != "baseline", a.subject))
        budget = budgets.get(name, rules.budget)
        out += group[:budget]
        rest = group[budget:]
        if rest:
            out.append(_digest(name, window, rest))
    return out


def _digest(name: str, window: Window, rest: list[Alert]) -> Alert:
    first = rest[0]
    severity = max((a.severity for a in rest), key=SEVERITIES.index)
    return Alert(
        rule=first.rule,
        status=first.status,
        dimension=first.dimension,
        measure=first.measure,
        window=window,
        subject=f"digest {name}",
        text=f"{name}: {len(rest)} more in {window.label}: " + "; ".join(a.text for a in rest),
        details={
            "alerts": [{"subject": a.subject, "text": a.text, "severity": a.severity} for a in rest]
        },
        severity=severity,
        kind="digest",
        explanation=f"{name} fired more than its budget in {window.label}; the rest are here",
        rule_name=name,
    )


def _final_twin(alert: Alert) -> str:
    """A late_correction and a final alert about the same finding are one event."""
    if alert.status == "final":
        other: Status = "late_correction"
    elif alert.status == "late_correction":
        other = "final"
    else:
        return alert.alert_id
    return replace(alert, status=other).alert_id


def snapshot(ws: WindowShares, now: datetime) -> ShareSnapshot:
    with_all = ws.shares(False)
    identified = ws.shares(True)
    measure = ws.measure
    if measure not in MEASURES:
        raise ValueError(f"snapshots are of measures, not of {measure!r}")
    return ShareSnapshot.about(
        ws.window,
        dimension=ws.dimension,
        measure=measure,
        final=ws.final,
        computed_at=now,
        values=[
            ShareValue(
                value=v,
                total=t,
                share=with_all.get(v, 0.0),
                share_identified=identified.get(v, 0.0),
            )
            for v, t in sorted(ws.totals.items(), key=lambda kv: -kv[1])
        ],
    )
