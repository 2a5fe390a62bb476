"""The id filter: never "certainly new" for a stored id, bounded, read from the table per day."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from tokenshare.sinks.id_filter import IdFilter, id_hashes


def ids(prefix: str, n: int) -> pa.Array:
    return pa.array([f"{prefix}-{i:07d}" for i in range(n)])


def test_hashes_are_positional_and_do_not_depend_on_slicing() -> None:
    some = ids("sim7", 50_000)
    hashes = id_hashes(some)
    assert len(np.unique(hashes)) == 50_000
    assert (id_hashes(some.slice(123, 40)) == hashes[123:163]).all()
    assert len(set(id_hashes(pa.array(["", "a", "ab", "ba", "aa"])).tolist())) == 5


def test_stored_and_added_ids_are_never_proven_new() -> None:
    stored = ids("old", 30_000)
    reads: list[list[int]] = []

    def read_days(days: list[int]) -> dict[int, list[pa.Array]]:
        reads.append(days)
        return {5: [stored]} if 5 in days else {}

    f = IdFilter(read_days)
    day5 = np.full(30_000, 5, dtype=np.int64)
    assert f.maybe_stored(id_hashes(stored), day5).all()
    fresh = id_hashes(ids("new", 30_000))
    both = np.concatenate([day5, np.full(30_000, 6, dtype=np.int64)])
    # Ids never stored: proven new on day 5 (bar a few false "maybe"), all of them on day 6.
    answer = f.maybe_stored(np.concatenate([fresh, fresh]), both)
    assert answer[:30_000].mean() < 0.01 and not answer[30_000:].any()
    assert reads == [[5], [6]]  # each day read once, the days of one flush in one read
    for start in range(0, 30_000, 1_000):  # added in flushes: the day's filter grows
        f.add(fresh[start : start + 1_000], np.full(1_000, 6, dtype=np.int64))
    assert f.maybe_stored(fresh, np.full(30_000, 6, dtype=np.int64)).all()


def test_memory_stays_within_its_bound() -> None:
    f = IdFilter(lambda days: {}, max_bits=1 << 20)
    hashes = id_hashes(ids("x", 1_000))
    for day in range(100):
        f.add(hashes, np.full(1_000, day, dtype=np.int64))
    held = f._days
    assert sum(d.bits for d in held.values()) <= 1 << 20 and len(held) < 100
    assert list(held)[-1] == 99  # the least recently used went first
