"""Windows over per-day partial sums, in event time.

State is one number per (segment, dimension, value, day, sum); every window
is a sum of days, so weeks and months are derived from days and never stored.
A window is final once the watermark (greatest event time seen minus the
allowed lateness) has passed its end. Segment "" is all traffic; "weights=open"
holds the sums of every dimension among open models only (``where`` filters).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate

from tokenshare.schema.outputs import ONE_WEEK, Window
from tokenshare.schema.vocabulary import SUMS, Counter, Dimension, Measure, WindowKind
from tokenshare.streams.shares.model import WindowShares

ONE_DAY = timedelta(days=1)
#: dimension -> value -> day -> sums (in ``SUMS`` order; missing trailing sums count 0).
Cells = dict[str, dict[str, dict[date, tuple[float, ...]]]]


@dataclass(slots=True)
class DaySums:
    """Per-day sums by dimension and value, for all traffic (`cells`) and within each
    segment (`segments`, keyed "weights=open"), plus the greatest event time."""

    cells: Cells = field(default_factory=dict)
    max_ts: datetime | None = None
    segments: dict[str, Cells] = field(default_factory=dict)

    def add(
        self, dimension: str, value: str, day: date, measures: Iterable[float], segment: str = ""
    ) -> None:
        cells = self.cells if not segment else self.segments.setdefault(segment, {})
        days = cells.setdefault(dimension, {}).setdefault(value, {})
        old = days.get(day)
        new = tuple(measures)
        if old is not None:
            width = max(len(old), len(new))
            old, new = _pad(old, width), _pad(new, width)
            new = tuple(a + b for a, b in zip(old, new, strict=True))
        days[day] = new

    def of(self, segment: str = "") -> Cells:
        """The cells of one segment ("" = all traffic); empty when it never had traffic."""
        return self.cells if not segment else self.segments.get(segment, {})

    def days(self) -> tuple[date, date] | None:
        all_days = [
            d for values in self.cells.values() for by_day in values.values() for d in by_day
        ]
        return (min(all_days), max(all_days)) if all_days else None

    def values_seen(self) -> dict[str, set[str]]:
        """Every value of every dimension in the data (for the rules' value checks)."""
        return {d: set(values) for d, values in self.cells.items()}


def _pad(cell: tuple[float, ...], width: int) -> tuple[float, ...]:
    return cell + (0.0,) * (width - len(cell))


def is_final(window: Window, mark: datetime | None) -> bool:
    return mark is not None and mark >= datetime.combine(window.end, time(), UTC)


def _up_to(window: Window, last: date, following: Callable[[Window], Window]) -> list[Window]:
    """`window` and those following it, up to the one holding `last`."""
    out = []
    while window.start <= last:
        out.append(window)
        window = following(window)
    return out


def iso_weeks(first: date, last: date) -> list[Window]:
    return _up_to(
        Window.iso_week(first), last, lambda week: Window(week.end, week.end + ONE_WEEK, "iso_week")
    )


def rolling_windows(first: date, last: date, days: int = 7) -> list[Window]:
    """One window per day D from `first` to `last`, covering D-days+1 .. D."""
    out = []
    day = first
    while day <= last:
        out.append(Window(day - timedelta(days=days - 1), day + ONE_DAY, "rolling_7d"))
        day += ONE_DAY
    return out


def months(first: date, last: date) -> list[Window]:
    return _up_to(Window.month(first), last, lambda month: Window.month(month.end))


def windows(kind: WindowKind, first: date, last: date) -> list[Window]:
    if kind == "iso_week":
        return iso_weeks(first, last)
    if kind == "month":
        return months(first, last)
    return rolling_windows(first, last)


def series(
    sums: DaySums,
    dimension: Dimension,
    measure: Measure | Counter,
    kind: WindowKind,
    mark: datetime | None,
    segment: str = "",
) -> list[WindowShares]:
    """Shares of `measure` by value of `dimension` in every window of `kind`, oldest first,
    within `segment` ("" = all traffic).

    Prefix sums per value make each window O(values), whatever its length. A window
    is `complete` when the data's days cover it (the first and last are often partial).
    """
    span = sums.days()
    by_value = sums.of(segment).get(dimension, {})
    if span is None or not by_value:
        return []
    m = SUMS.index(measure)
    all_windows = windows(kind, *span)
    origin = all_windows[0].start
    length = (all_windows[-1].end - origin).days
    prefix: dict[str, list[float]] = {}
    for value, by_day in by_value.items():
        daily = [0.0] * length
        for day, cell in by_day.items():
            offset = (day - origin).days
            if 0 <= offset < length and m < len(cell):
                daily[offset] = cell[m]
        prefix[value] = list(accumulate(daily, initial=0.0))
    out = []
    for window in all_windows:
        lo, hi = (window.start - origin).days, (window.end - origin).days
        lo = max(lo, 0)
        totals = {v: p[hi] - p[lo] for v, p in prefix.items() if p[hi] - p[lo]}
        if totals:
            complete = window.start >= span[0] and window.end <= span[1] + ONE_DAY
            out.append(
                WindowShares(window, dimension, measure, totals, is_final(window, mark), complete)
            )
    return out


def window_shares(
    sums: DaySums, dimension: Dimension, measure: Measure, window: Window, mark: datetime | None
) -> WindowShares | None:
    """One window's shares (None when it holds no data)."""
    m = SUMS.index(measure)
    totals: dict[str, float] = {}
    for value, by_day in sums.cells.get(dimension, {}).items():
        total = sum(cell[m] for day, cell in by_day.items() if window.start <= day < window.end)
        if total:
            totals[value] = total
    if not totals:
        return None
    return WindowShares(window, dimension, measure, totals, is_final(window, mark))
