"""The share engine: day sums in, new alerts and share snapshots out.

Each tick reads the per-day partial sums (``daily_rollup`` in ClickHouse,
filled by a materialized view from the de-duplicated raw rows, so global
across every partition and worker and exact under redelivery), derives all
windows, runs every rule over the whole history, and keeps only what the
ledger has not seen. The ledger is the alerts topic itself: an alert is
"fired" once the broker acknowledged it, so a restart or a new leader reads
the topic back and fires nothing twice. Evaluation is a pure function of the
sums, so a replay in event time produces the same alerts, with the same ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from tokenshare.schema.outputs import ShareSnapshot, ShareValue, Window
from tokenshare.schema.vocabulary import (
    DIMENSIONS,
    MEASURES,
    Dimension,
    Measure,
    Status,
    WindowKind,
)
from tokenshare.streams.shares.config import RulesConfig
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

# One sum per measure, in MEASURES order (the order of DaySums' cells).
DAY_SUMS_SQL = (
    "SELECT dimension, value, day, "
    + ", ".join(f"sum({m})" for m in MEASURES)
    + " FROM {db}.daily_rollup GROUP BY dimension, value, day"
)


def load_day_sums(query: Query, database: str, idle_seconds: float = 30.0) -> DaySums:
    """The whole rollup as DaySums (small: dimensions x values x days).

    `max_ts` is the event time every active partition has reached, by the
    rule the store counts late rows with (``tokenshare.watermark``): partitions
    idle for longer than `idle_seconds` are left out.
    """
    sums = DaySums()
    for dimension, value, day, *measures in query(DAY_SUMS_SQL.format(db=database)):
        sums.add(str(dimension), str(value), _as_date(day), (float(m) for m in measures))
    sums.max_ts = event_time_reached(read_progress(query, database), idle_seconds)
    return sums


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

    def tick(self, sums: DaySums, now: datetime | None = None) -> TickResult:
        mark = watermark(sums.max_ts, self.rules.lateness)
        cache: dict[tuple[Dimension, Measure, WindowKind], list[WindowShares]] = {}

        def get_series(
            dimension: Dimension, measure: Measure, kind: WindowKind
        ) -> list[WindowShares]:
            key = (dimension, measure, kind)
            if key not in cache:
                # Windows that start after the slowest partition's event time hold
                # only what faster partitions sent: not evaluated until it gets there.
                frontier = sums.max_ts.date() if sums.max_ts else None
                cache[key] = [
                    ws
                    for ws in series(sums, dimension, measure, kind, mark)
                    if frontier is None or ws.window.start <= frontier
                ]
            return cache[key]

        found = list(evaluate_rules(get_series, self.rules))
        for kind in self.rules.windows:
            for dimension in self.rules.crossover.dimensions:
                found.extend(
                    crossovers(
                        get_series(dimension, self.rules.crossover.measure, kind),
                        self.rules.crossover,
                    )
                )
        result = TickResult(watermark=mark)
        for alert in sorted(found, key=lambda a: (a.window.end, a.window.kind, a.rule, a.subject)):
            alert = self._late(alert)
            if alert.alert_id in self.fired or _final_twin(alert) in self.fired:
                continue
            result.alerts.append(alert)
        result.snapshots = self._snapshots(sums, mark, now or datetime.now(UTC))
        span = sums.days()
        self._final_windows = (
            {w for kind in self.rules.windows for w in windows(kind, *span) if is_final(w, mark)}
            if span
            else set()
        )
        return result

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
        self, sums: DaySums, mark: datetime | None, now: datetime
    ) -> list[ShareSnapshot]:
        """The open window of each kind, and windows that closed since the last tick.

        Only what changed since it was last published; a restart publishes the
        latest windows again (the snapshot table keeps one row per window).
        """
        span = sums.days()
        if span is None:
            return []
        out = []
        for kind in self.rules.windows:
            all_windows = windows(kind, *span)
            wanted = [all_windows[-1]]
            closed = [w for w in all_windows if is_final(w, mark)]
            if self._final_windows is None:
                wanted += closed[-1:]
            else:
                wanted += [w for w in closed if w not in self._final_windows]
            for window in dict.fromkeys(wanted):
                for dimension in DIMENSIONS:
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
    return ShareSnapshot.about(
        ws.window,
        dimension=ws.dimension,
        measure=ws.measure,
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
