"""Proof that an event id is new, without asking ClickHouse: a Bloom filter per day.

The event-id guard (``sinks.raw_events``) must find every row whose (event id,
day) is already stored. Asking the table for every id of every flush costs
about as much as the insert. A Bloom filter holding every id stored for a day
answers "certainly not stored" for almost all of them, and only the rest go
to the table. A filter can only err towards "maybe", and a "maybe" is checked
by the table as before, so the guard stays exact; a false "maybe" costs a
lookup, never a lost row.

That holds while the filter contains every stored id of its day, hence:

- a day's filter is built from the table (its ids, read once) when a flush
  first needs it, so a restart after a crash starts from what is durable;
- the writer adds the ids of a flush before inserting them, so an insert
  whose outcome is unknown (a lost reply, a crash) is covered whether or not
  it landed;
- it is used only where this writer is the table's only writer (an embedded
  data path has exactly one store): another writer's rows would not be in it.

Memory is bounded: each day's filter is sized for the ids it holds (16 bits
an id, built again twice as large when it fills), and all of them together
hold at most 32 MiB, least recently used days out first; a day dropped is
read again if rows of it come back. Hashes are computed over Arrow's string buffers with numpy,
so no Python object is made per id.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

U64 = NDArray[np.uint64]

#: Multiplier of the polynomial string hash, and splitmix64's constants (its finaliser
#: spreads the polynomial's bits over the whole word).
_P = np.uint64(0x100000001B3)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def id_hashes(ids: pa.Array | pa.ChunkedArray) -> U64:
    """A 64-bit hash of each string of `ids` (no nulls), the same in every process."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    n = len(ids)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    if pa.types.is_large_string(ids.type):
        ids = ids.cast(pa.string())
    _, offsets_buf, data_buf = ids.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int32)[ids.offset : ids.offset + n + 1]
    begin, end = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(data_buf, dtype=np.uint8)[begin:end] if data_buf else np.zeros(0, np.uint8)
    starts = (offsets[:-1] - begin).astype(np.int64)
    lengths = np.diff(offsets).astype(np.int64)
    with np.errstate(over="ignore"):
        h = lengths.astype(np.uint64) * _M1 + _P
        if len(data):
            position = np.arange(len(data), dtype=np.int64) - np.repeat(starts, lengths)
            powers = _powers(int(lengths.max()))
            terms = (data.astype(np.uint64) + np.uint64(1)) * powers[position]
            sums = np.add.reduceat(terms, np.minimum(starts, len(data) - 1))
            h ^= np.where(lengths > 0, sums, np.uint64(0))
        h ^= h >> np.uint64(30)
        h *= _M1
        h ^= h >> np.uint64(27)
        h *= _M2
        h ^= h >> np.uint64(31)
    return h


_POWERS: list[U64] = []


def _powers(length: int) -> U64:
    if not _POWERS or len(_POWERS[0]) < length:
        with np.errstate(over="ignore"):
            p = np.ones(max(length, 256), dtype=np.uint64)
            for i in range(1, len(p)):
                p[i] = p[i - 1] * _P
        _POWERS[:] = [p]
    return _POWERS[0]


#: Bits per id a day's filter is sized for: with 4 probes, about 1 false "maybe" in 400.
BITS_PER_ID = 16
MIN_BITS = 1 << 16


class DayFilter:
    """A Bloom filter of ids: `k` probes by double hashing into `bits` bits."""

    def __init__(self, bits: int, k: int) -> None:
        if bits & (bits - 1) or bits < 64:
            raise ValueError("bits must be a power of two, at least 64")
        self.bits = bits
        self.words = np.zeros(bits // 64, dtype=np.uint64)
        self.mask = np.uint64(bits - 1)
        self.k = k
        self.count = 0  # ids added (repeats included)

    @property
    def full(self) -> bool:
        return self.count * BITS_PER_ID > self.bits

    def _probes(self, hashes: U64) -> U64:
        h1 = hashes & np.uint64(0xFFFFFFFF)
        h2 = (hashes >> np.uint64(32)) | np.uint64(1)
        with np.errstate(over="ignore"):
            return np.concatenate([(h1 + np.uint64(i) * h2) & self.mask for i in range(self.k)])

    def add(self, hashes: U64) -> None:
        probes = self._probes(hashes)
        np.bitwise_or.at(
            self.words, probes >> np.uint64(6), np.uint64(1) << (probes & np.uint64(63))
        )
        self.count += len(hashes)

    def maybe(self, hashes: U64) -> NDArray[np.bool_]:
        """True where the id may be in the filter; False: certainly not."""
        probes = self._probes(hashes)
        hit = (self.words[probes >> np.uint64(6)] >> (probes & np.uint64(63))) & np.uint64(1)
        found: NDArray[np.bool_] = np.all(hit.reshape(self.k, len(hashes)).astype(bool), axis=0)
        return found


def _bits_for(ids: int, cap: int) -> int:
    want = max(MIN_BITS, ids * BITS_PER_ID)
    return min(cap, 1 << (want - 1).bit_length())


class IdFilter:
    """Day filters, each built on first use from `read_days` (the stored ids of
    each day asked for, in one read per flush) and sized for them; one that
    fills up is built again twice as large. Together they hold at most
    `max_bits` bits: the least recently used days go first."""

    def __init__(
        self,
        read_days: Callable[[list[int]], dict[int, list[pa.Array]]],
        *,
        max_bits: int = 1 << 28,
        k: int = 4,
    ) -> None:
        self.read_days = read_days
        self.max_bits = max_bits
        self.k = k
        self._days: OrderedDict[int, DayFilter] = OrderedDict()
        self.loads = 0  # day filters built from the table
        self.checked = 0  # ids answered
        self.unsure = 0  # of which "maybe": looked up in the table

    def clear(self) -> None:
        """Forget everything (another writer may have written meanwhile)."""
        self._days.clear()

    def _load(self, extra: dict[int, int]) -> None:
        """The days' filters from their stored ids, with room for `extra` more each."""
        stored = self.read_days(sorted(extra))
        for day, more in extra.items():
            self._build(day, stored.get(day, []), more)

    def _build(self, day: int, stored: list[pa.Array], extra: int) -> DayFilter:
        n = sum(len(a) for a in stored)
        made = DayFilter(_bits_for(2 * (n + extra), self.max_bits), self.k)
        for ids in stored:
            made.add(id_hashes(ids))
        self.loads += 1
        self._days.pop(day, None)
        self._days[day] = made
        held = sum(f.bits for f in self._days.values())
        while held > self.max_bits and len(self._days) > 1:
            _, dropped = self._days.popitem(last=False)
            held -= dropped.bits
        return made

    def _per_day(self, days: NDArray[np.int64]) -> dict[int, NDArray[np.bool_]]:
        """Rows of each day, every day's filter held (the missing ones read at once)."""
        rows = {int(day): days == day for day in np.unique(days).tolist()}
        missing = {
            day: int(np.count_nonzero(r)) for day, r in rows.items() if day not in self._days
        }
        if missing:
            self._load(missing)
        for day in rows:
            self._days.move_to_end(day)
        return rows

    def maybe_stored(self, hashes: U64, days: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Per row: False where (id, day) is certainly not stored."""
        out = np.zeros(len(hashes), dtype=bool)
        for day, rows in self._per_day(days).items():
            out[rows] = self._days[day].maybe(hashes[rows])
        self.checked += len(hashes)
        self.unsure += int(np.count_nonzero(out))
        return out

    def add(self, hashes: U64, days: NDArray[np.int64]) -> None:
        """Record ids about to be stored (before the insert: see the module's docstring)."""
        per_day = self._per_day(days)
        full = {
            day: int(np.count_nonzero(rows))
            for day, rows in per_day.items()
            if self._days[day].bits < self.max_bits
            and (self._days[day].count + int(np.count_nonzero(rows))) * BITS_PER_ID
            > self._days[day].bits
        }
        if full:
            self._load(full)  # built again, larger
        for day, rows in per_day.items():
            self._days[day].add(hashes[rows])
