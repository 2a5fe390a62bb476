"""ClickHouse's Native format at a client's protocol version, from the engine's protocol-0 output.

A ClickHouse server writes Native for the ``client_protocol_version`` an HTTP
client names (clickhouse-go, which Grafana's datasource uses, always names one;
clickhouse-connect probes for it). The embedded engine writes Native only as
for protocol 0, and its API has no way to ask for another. The two differ in
three places, all in ClickHouse's ``NativeWriter``:

- from any version above 0 each block starts with its ``BlockInfo``
  (field 1 ``is_overflows`` UInt8, field 2 ``bucket_num`` Int32, 0 to end);
- from 54337 (``DBMS_MIN_REVISION_WITH_TIME_ZONE_PARAMETER_IN_DATETIME_DATA_TYPE``)
  a top-level ``DateTime('Zone')`` keeps its zone; below it the type is named
  ``DateTime`` (nested ones keep it in any version);
- from 54454 (``DBMS_MIN_REVISION_WITH_CUSTOM_SERIALIZATION``) each column's
  type is followed by a ``has_custom`` byte (0 here: the default serialization).

So each block is walked column by column (the data of a column is skipped by
its type: fixed widths, strings, Nullable, Array, Map, Tuple, LowCardinality)
and written again with those parts. Types whose serialization itself depends
on the version (Variant, Dynamic, JSON, AggregateFunction) are refused with a
hint to ask for another format.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

#: The versions at which NativeWriter's output changes (ClickHouse's ProtocolDefines.h).
WITH_TIME_ZONE = 54337
WITH_CUSTOM_SERIALIZATION = 54454
#: The newest version written here: clickhouse-go v2's (DBMS_TCP_PROTOCOL_VERSION).
#: Later versions add block-info fields and serializations of the refused types.
MAX_REVISION = 54460

#: BlockInfo as a server writes it: is_overflows=false, bucket_num=-1, end.
_BLOCK_INFO = b"\x01\x00\x02" + struct.pack("<i", -1) + b"\x00"

_FIXED = {
    "UInt8": 1,
    "Int8": 1,
    "Bool": 1,
    "Enum8": 1,
    "Nothing": 1,
    "UInt16": 2,
    "Int16": 2,
    "Enum16": 2,
    "Date": 2,
    "BFloat16": 2,
    "UInt32": 4,
    "Int32": 4,
    "Float32": 4,
    "Date32": 4,
    "DateTime": 4,
    "IPv4": 4,
    "Time": 4,
    "UInt64": 8,
    "Int64": 8,
    "Float64": 8,
    "DateTime64": 8,
    "Time64": 8,
    "Decimal32": 4,
    "Decimal64": 8,
    "UInt128": 16,
    "Int128": 16,
    "UUID": 16,
    "IPv6": 16,
    "Decimal128": 16,
    "UInt256": 32,
    "Int256": 32,
    "Decimal256": 32,
}
_UNSUPPORTED = ("Variant", "Dynamic", "JSON", "Object", "AggregateFunction")
#: Geo types, as the containers they are stored as.
_GEO = {
    "Point": "Tuple(Float64, Float64)",
    "Ring": "Array(Tuple(Float64, Float64))",
    "LineString": "Array(Tuple(Float64, Float64))",
    "MultiLineString": "Array(Array(Tuple(Float64, Float64)))",
    "Polygon": "Array(Array(Tuple(Float64, Float64)))",
    "MultiPolygon": "Array(Array(Array(Tuple(Float64, Float64))))",
}


class NativeError(ValueError):
    """The stream cannot be written at the client's version; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class DataType:
    name: str
    args: tuple[DataType, ...] = ()
    text: str = ""  #: the whole type as written, e.g. ``Array(Nullable(String))``
    raw_args: tuple[str, ...] = ()  #: the arguments as written (for widths and zones)


def parse_type(text: str) -> DataType:
    """A ClickHouse type name as a tree (``Tuple(a String, b UInt8)`` names its elements)."""
    text = text.strip()
    if text in _GEO:
        return parse_type(_GEO[text])
    open_at = text.find("(")
    if open_at < 0 or not text.endswith(")"):
        return DataType(text, text=text)
    name = text[:open_at].strip()
    raw = tuple(_split_args(text[open_at + 1 : -1]))
    if name == "SimpleAggregateFunction":  # stored as its value type
        return parse_type(raw[-1])
    if name in ("Nullable", "Array", "LowCardinality", "Map", "Tuple", "Nested"):
        named = name in ("Tuple", "Nested")
        args = tuple(parse_type(_element_type(a) if named else a) for a in raw)
    else:
        args = ()
    return DataType(name, args, text, raw)


def _split_args(inner: str) -> list[str]:
    out, depth, quote, start = [], 0, "", 0
    i = 0
    while i < len(inner):
        c = inner[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'`\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            out.append(inner[start:i].strip())
            start = i + 1
        i += 1
    out.append(inner[start:].strip())
    return [a for a in out if a]


def _element_type(arg: str) -> str:
    """``b UInt8`` -> ``UInt8``; an unnamed element is its type already."""
    head = arg.split("(", 1)[0]
    if " " in head.strip():
        return arg.strip().split(None, 1)[1]
    if arg.startswith("`"):
        return arg[arg.index("`", 1) + 1 :].strip()
    return arg


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def varint(self) -> int:
        shift = result = 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result
            shift += 7

    def string(self) -> bytes:
        size = self.varint()
        start = self.pos
        self.pos += size
        return self.data[start : self.pos]

    def skip(self, size: int) -> None:
        self.pos += size
        if self.pos > len(self.data):
            raise NativeError("the Native stream ends inside a column")

    def uint64(self) -> int:
        (value,) = struct.unpack_from("<Q", self.data, self.pos)
        self.pos += 8
        return int(value)


def _skip_prefix(r: _Reader, t: DataType) -> None:
    """The column's state prefix (written once before its data)."""
    if t.name == "LowCardinality":
        r.skip(8)  # key serialization version
    elif t.name in ("Nullable", "Array", "Map", "Tuple", "Nested"):
        for arg in t.args:
            _skip_prefix(r, arg)


def _skip_data(r: _Reader, t: DataType, rows: int) -> None:
    name = t.name
    if name in _FIXED:
        r.skip(_FIXED[name] * rows)
    elif name == "String":
        for _ in range(rows):
            r.skip(r.varint())
    elif name == "FixedString":
        r.skip(int(t.raw_args[0]) * rows)
    elif name == "Decimal":
        precision = int(t.raw_args[0])
        width = 4 if precision <= 9 else 8 if precision <= 18 else 16 if precision <= 38 else 32
        r.skip(width * rows)
    elif name.startswith("Interval"):
        r.skip(8 * rows)
    elif name == "Nullable":
        r.skip(rows)
        _skip_data(r, t.args[0], rows)
    elif name in ("Array", "Map", "Nested"):
        if rows == 0:
            return
        r.skip(8 * (rows - 1))
        total = r.uint64()
        if name == "Array":
            _skip_data(r, t.args[0], total)
        else:
            for arg in t.args:
                _skip_data(r, arg, total)
    elif name == "Tuple":
        for arg in t.args:
            _skip_data(r, arg, rows)
    elif name == "LowCardinality":
        _skip_low_cardinality(r, t.args[0], rows)
    elif name.startswith(_UNSUPPORTED):
        raise NativeError(f"{t.text} columns are not served in Native at a protocol version")
    else:
        raise NativeError(f"unknown type {t.text} in the Native stream")


def _skip_low_cardinality(r: _Reader, inner: DataType, rows: int) -> None:
    """LowCardinality's data: granules of (flags, keys, indexes) until `rows` indexes."""
    dictionary = inner.args[0] if inner.name == "Nullable" else inner
    seen = 0
    while seen < rows:
        flags = r.uint64()
        width = 1 << (flags & 0xFF)  # UInt8, UInt16, UInt32, UInt64 indexes
        if flags & (1 << 9):  # HasAdditionalKeysBit: a dictionary follows
            _skip_data(r, dictionary, r.uint64())
        count = r.uint64()
        r.skip(width * count)
        seen += count


def upgrade(stream: bytes, revision: int, zoned: Sequence[str | None] = ()) -> bytes:
    """`stream` (Native as for protocol 0) as Native for protocol `revision`.

    `zoned` holds, by column position, the full type of each top-level
    ``DateTime`` column whose zone the engine left out (None where the type is
    right as written); raises :class:`NativeError` for a stream it cannot write."""
    revision = min(revision, MAX_REVISION)
    if revision <= 0:
        return stream
    r = _Reader(stream)
    out = bytearray()
    try:
        while r.pos < len(stream):
            out += _BLOCK_INFO
            columns, rows = r.varint(), r.varint()
            out += _varint(columns) + _varint(rows)
            for index in range(columns):
                name = r.string()
                type_name = r.string().decode()
                start = r.pos
                if rows:
                    t = parse_type(type_name)
                    _skip_prefix(r, t)
                    _skip_data(r, t, rows)
                if (
                    revision >= WITH_TIME_ZONE
                    and type_name == "DateTime"
                    and index < len(zoned)
                    and zoned[index]
                ):
                    type_name = str(zoned[index])
                out += _varint(len(name)) + name
                encoded = type_name.encode()
                out += _varint(len(encoded)) + encoded
                if revision >= WITH_CUSTOM_SERIALIZATION:
                    out += b"\x00"  # has_custom: default serialization
                out += stream[start : r.pos]
    except (IndexError, struct.error) as exc:
        raise NativeError(f"the Native stream is cut short ({exc})") from None
    return bytes(out)


def top_level_types(stream: bytes) -> list[str]:
    """The column types of the first block, as written (for deciding on `zoned`)."""
    if not stream:
        return []
    r = _Reader(stream)
    columns, rows = r.varint(), r.varint()
    types = []
    for _index in range(columns):
        r.string()
        type_name = r.string().decode()
        types.append(type_name)
        if rows:
            t = parse_type(type_name)
            _skip_prefix(r, t)
            _skip_data(r, t, rows)
    return types


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
