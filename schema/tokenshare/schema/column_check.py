"""The contract checked column by column: the worker's fast path to valid events.

`schema.wire` decodes a message with pydantic-core into one model object per
event, which the worker then takes apart again into columns. When every event
of a message is valid (nearly always) that is two passes and an object per
event for nothing. Here the message is parsed once (orjson) and each field's
column is checked as a whole, mostly in C (`set(map(type, ...))`, `min`,
`max`, a regex per distinct value), giving the columns directly.

The checks are read from `EventFields` itself (types, bounds, lengths,
patterns, defaults), so the contract still lives in one place. They only ever
*accept*: whatever they cannot prove valid, such as one bad event, an unusual
but legal timestamp form, or a JSON document orjson refuses, returns None, and
the caller decodes the message the pydantic way, which decides and words every
rejection. So decisions and dead-letter reasons are pydantic's by
construction; a differential test checks that what is accepted here is
accepted there with the same values.
"""

from __future__ import annotations

import functools
import math
import operator
import re
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Union, get_args, get_origin

import annotated_types
import orjson
from pydantic import AwareDatetime, StringConstraints
from pydantic_core import PydanticUndefined

from tokenshare.schema.event import PARTS_OF, EventFields

Column = list[Any]
#: Checks one column; returns it (converted where pydantic converts) or None.
Check = Callable[[Column], Column | None]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_NONE = type(None)
#: The timestamp forms accepted here: RFC 3339 with `T`, 0-6 fraction digits
#: and `Z` or `+hh:mm`, ranges checked by the regex or by `datetime` itself.
#: pydantic accepts more forms (a space, `z`, `+hhmm`, unix seconds, ...):
#: those take the pydantic path.
_TS_FORM = re.compile(
    r"\d{4}-\d{2}-\d{2}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?"
    r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)"
)
_TS_RE2 = f"^{_TS_FORM.pattern}$"


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    required: bool
    default: Any
    check: Check


def _summed(columns: list[Column]) -> Iterable[int]:
    """Element-wise sums of equally long columns, lazily and in C (`map` of `add`)."""
    return functools.reduce(lambda acc, col: map(operator.add, acc, col), columns[1:], columns[0])


def _bounds(metadata: Sequence[Any]) -> tuple[Any, Any]:
    ge = le = None
    for m in metadata:
        if isinstance(m, annotated_types.Ge):
            ge = m.ge
        elif isinstance(m, annotated_types.Le):
            le = m.le
        else:
            raise TypeError(f"column_check does not know the constraint {m!r}")
    return ge, le


def _unwrap(annotation: Any) -> tuple[Any, bool, list[Any]]:
    """(base type, None allowed, metadata inside the annotation)."""
    optional = False
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not _NONE]
        if len(args) != 1 or len(args) == len(get_args(annotation)):
            raise TypeError(f"column_check does not know the type {annotation!r}")
        optional, annotation = True, args[0]
    inner: list[Any] = []
    if hasattr(annotation, "__metadata__"):
        inner = list(annotation.__metadata__)
        annotation = annotation.__origin__
    return annotation, optional, inner


def _int_check(allowed: frozenset[type], ge: Any, le: Any) -> Check:
    def check(col: Column) -> Column | None:
        kinds = set(map(type, col))
        if not kinds <= allowed:  # bool is no int here: pydantic's strict mode refuses it
            return None
        values = [v for v in col if v is not None] if _NONE in kinds else col
        if values and (
            (ge is not None and min(values) < ge) or (le is not None and max(values) > le)
        ):
            return None
        return col

    return check


def _float_check(ge: Any, le: Any) -> Check:
    def check(col: Column) -> Column | None:
        kinds = set(map(type, col))
        if not kinds <= {float, int}:
            return None
        if int in kinds:  # strict pydantic takes JSON integers for floats, as floats
            col = list(map(float, col))
        if not all(map(math.isfinite, col)):  # a producer's own dicts may hold NaN
            return None
        if (ge is not None and min(col) < ge) or (le is not None and max(col) > le):
            return None
        return col

    return check


def _bool_check(col: Column) -> Column | None:
    return col if set(map(type, col)) <= {bool} else None


def _str_check(optional: bool, constraints: StringConstraints | None) -> Check:
    allowed = {str, _NONE} if optional else {str}
    lo = hi = None
    pattern = None
    if constraints is not None:
        known = {"min_length", "max_length", "pattern"}
        extra = {
            k for k in type(constraints).__dataclass_fields__ if getattr(constraints, k) is not None
        }
        if extra - known:
            raise TypeError(f"column_check does not know the constraints {sorted(extra - known)}")
        lo, hi = constraints.min_length, constraints.max_length
        if constraints.pattern is not None:
            source = str(constraints.pattern)
            if not (source.startswith("^") and source.endswith("$")):
                raise TypeError(f"column_check needs anchored patterns, not {source!r}")
            pattern = re.compile(source[1:-1])  # anchored again by fullmatch

    def check(col: Column) -> Column | None:
        kinds = set(map(type, col))
        if not kinds <= allowed:
            return None
        distinct = set(col)  # most of these columns hold a few values, often repeated
        distinct.discard(None)
        if not distinct:
            return col
        if lo is not None or hi is not None:
            lengths = set(map(len, distinct))
            if (lo is not None and min(lengths) < lo) or (hi is not None and max(lengths) > hi):
                return None
        if pattern is not None and not all(map(pattern.fullmatch, distinct)):
            return None
        return col

    return check


def _ts_check(ge: datetime) -> Check:
    """Strings in `_TS_FORM` to epoch ms (floor), none before `ge`."""
    min_us = (ge - _EPOCH) // _US
    if min_us < 0:  # the Arrow path's division truncates: the floor only from 1970 on
        raise TypeError("column_check expects a lower bound on ts after 1970")

    def check(col: Column) -> Column | None:
        return _to_ms()(col, min_us) if set(map(type, col)) == {str} else None

    return check


@functools.cache
def _to_ms() -> Callable[[Column, int], Column | None]:
    """Arrow's parser where it is installed (a worker), else Python's (a producer's
    base install). Chosen at first use: importing a producer loads nothing heavy."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return _ms_by_python
    return _ms_by_arrow


def _ms_by_arrow(col: Column, min_us: int) -> Column | None:
    """Form, parse and bound checked a column at a time, in C. RE2's \\d is ASCII
    only, stricter than re's: it can only refuse more, never accept more."""
    import pyarrow as pa
    import pyarrow.compute as pc

    strings = pa.array(col, pa.string())
    if not pc.all(pc.match_substring_regex(strings, _TS_RE2)).as_py():
        return None
    try:
        us = pc.cast(strings, pa.timestamp("us", tz="UTC")).cast(pa.int64())
    except pa.ArrowInvalid:  # e.g. 31 February: pydantic words that one
        return None
    if pc.min(us).as_py() < min_us:
        return None
    return pc.divide(us, 1000).to_pylist()  # type: ignore[no-any-return]


def _ms_by_python(col: Column, min_us: int) -> Column | None:
    """A producer's way without Arrow (its base install): value by value."""
    if not all(map(_TS_FORM.fullmatch, col)):
        return None
    try:
        us = [(datetime.fromisoformat(t) - _EPOCH) // _US for t in col]
    except ValueError:  # e.g. 31 February: pydantic words that one
        return None
    return [t // 1000 for t in us] if min(us) >= min_us else None


def _field_check(name: str, annotation: Any, metadata: list[Any]) -> Check:
    base, optional, inner = _unwrap(annotation)
    if base is AwareDatetime and not optional:
        ge, le = _bounds(metadata)
        if not isinstance(ge, datetime) or le is not None:
            raise TypeError(f"column_check expects only a lower bound on {name}")
        return _ts_check(ge)
    if base is str:
        constraints = [m for m in [*inner, *metadata] if isinstance(m, StringConstraints)]
        if len(constraints) != len([*inner, *metadata]) or len(constraints) > 1:
            raise TypeError(f"column_check does not know the constraints of {name}")
        return _str_check(optional, constraints[0] if constraints else None)
    if inner:
        raise TypeError(f"column_check does not know the constraints of {name}")
    if base is bool and not optional and not metadata:
        return _bool_check
    if base is int:
        ge, le = _bounds(metadata)
        return _int_check(frozenset({int, _NONE} if optional else {int}), ge, le)
    if base is float and not optional:
        ge, le = _bounds(metadata)
        return _float_check(ge, le)
    raise TypeError(f"column_check does not know the type of {name}: {annotation!r}")


def _fields() -> tuple[_Field, ...]:
    config = EventFields.model_config
    expected = {"strict": True, "allow_inf_nan": False, "str_strip_whitespace": False}
    if any(config.get(k) != v for k, v in expected.items()) or config.get("extra") == "forbid":
        raise TypeError("column_check assumes EventFields' strict, extra-ignoring config")
    out = []
    for name, info in EventFields.model_fields.items():
        if info.alias not in (None, name) or info.validation_alias is not None:
            raise TypeError(f"column_check does not know aliases ({name})")
        default = None if info.default is PydanticUndefined else info.default
        check = _field_check(name, info.annotation, list(info.metadata))
        out.append(_Field(name, info.is_required(), default, check))
    if set(EventFields.__pydantic_decorators__.field_validators) or set(
        EventFields.__pydantic_decorators__.model_validators
    ):
        raise TypeError("column_check does not run EventFields' validators")
    return tuple(out)


#: EventFields' fields, in declaration order, with their column checks.
FIELDS = _fields()
_NAMES = frozenset(f.name for f in FIELDS)
_SCALARS = {str, int, float, bool, _NONE}


@dataclass(slots=True)
class Columns:
    """Valid events of one message as columns (field name -> values), `ts` in epoch ms."""

    columns: dict[str, Column]
    count: int


def _raw_columns(items: list[dict[str, Any]]) -> list[Column | None] | None:
    """Each field's values, defaults filled in, None for a required field missing;
    or None for the whole when an extra key holds more than a scalar."""
    first = items[0]
    keys = tuple(first)
    # Gateways send the same keys in every event: when every dict has as many
    # keys as the first, and all of the first's, the key sets are equal, so a
    # field the first lacks is absent from all. Then transpose in C.
    if len(keys) > 1 and set(map(len, items)) == {len(keys)}:
        try:
            values = map(list, zip(*map(_getter(keys), items), strict=True))
            got = dict(zip(keys, values, strict=True))
        except KeyError:
            pass
        else:
            # Extra keys are ignored, but a nested value in one could be deeper
            # than pydantic's JSON parser allows (orjson allows more): scalars only.
            if any(
                not set(map(type, col)) <= _SCALARS for k, col in got.items() if k not in _NAMES
            ):
                return None
            n = len(items)
            return [
                got[f.name] if f.name in got else None if f.required else [f.default] * n
                for f in FIELDS
            ]
    extras = [v for d in items for k, v in d.items() if k not in _NAMES]
    if not set(map(type, extras)) <= _SCALARS:  # as above
        return None
    out: list[Column | None] = []
    for f in FIELDS:
        name = f.name
        if f.required:
            try:
                out.append([d[name] for d in items])
            except KeyError:
                out.append(None)
        else:
            default = f.default
            out.append([d.get(name, default) for d in items])
    return out


@functools.lru_cache(maxsize=64)  # key sets repeat; made-up ones must not grow it
def _getter(names: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    return operator.itemgetter(*names)


def parse(value: bytes) -> list[dict[str, Any]] | None:
    """The message's events as dicts, or None when it is no object or array of objects."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    items = [doc] if type(doc) is dict else doc
    if type(items) is not list or not items or set(map(type, items)) != {dict}:
        return None
    return items


def check(items: list[dict[str, Any]], latest_ms: int) -> Columns | None:
    """The events' columns when every event is valid for sure, else None.

    `items` are parsed JSON (`parse`), or a producer's own dicts before it
    encodes them: exact types only, so anything orjson would write differently
    (an enum, a datetime, a subclass) is left to pydantic. `latest_ms` is
    `event.latest_allowed_ms()`, as the rules use it."""
    if set(map(type, items)) != {dict}:
        return None
    columns: dict[str, Column] = {}
    raws = _raw_columns(items)
    if raws is None:
        return None
    for f, raw in zip(FIELDS, raws, strict=True):
        if raw is None:  # a required field missing
            return None
        col = f.check(raw)
        if col is None:
            return None
        columns[f.name] = col
    # event.rule_violations, by column: the parts within their totals, no future ts
    for parts, total, _ in PARTS_OF:
        sums = _summed([columns[p] for p in parts])
        if not all(map(operator.le, sums, columns[total])):
            return None
    if max(columns["ts"]) > latest_ms:
        return None
    return Columns(columns, len(items))
