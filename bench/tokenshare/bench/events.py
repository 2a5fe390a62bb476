"""The one event set every measure uses, and its wire encodings.

Generated once by the market simulator (realistic models, tokens, labels).
Measures that need more events than the set holds replay it in rounds with
fresh event ids (`relabel`), so the store's event-id guard keeps them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from tokenshare.producers.simulator import SimConfig, simulate


@dataclass(slots=True)
class EventSet:
    seed: int
    events: list[dict[str, Any]]
    _single: list[bytes] = field(default_factory=list)
    _batched: dict[int, list[bytes]] = field(default_factory=dict)

    @classmethod
    def generate(cls, count: int, seed: int) -> EventSet:
        return cls(seed, list(simulate(SimConfig(events=count, seed=seed))))

    def __len__(self) -> int:
        return len(self.events)

    @property
    def id_prefix(self) -> bytes:
        """How every event id of the set starts (`sim<seed>-`), as it appears in JSON."""
        return f'"sim{self.seed}-'.encode()

    def single(self, count: int) -> list[bytes]:
        """The first `count` events, one JSON object each."""
        if len(self._single) < count:
            self._single = [orjson.dumps(e) for e in self.events[:count]]
        return self._single[:count]

    def batched(self, size: int) -> list[bytes]:
        """The whole set as JSON arrays of `size` events."""
        if size not in self._batched:
            ev = self.events
            self._batched[size] = [orjson.dumps(ev[i : i + size]) for i in range(0, len(ev), size)]
        return self._batched[size]

    def chunks(self, size: int) -> list[list[dict[str, Any]]]:
        ev = self.events
        return [ev[i : i + size] for i in range(0, len(ev), size)]

    def relabel(self, value: bytes, round_no: int) -> bytes:
        """`value` with every event id moved to round `round_no` (ids stay unique)."""
        if round_no == 0:
            return value
        return value.replace(self.id_prefix, f'"r{round_no}s{self.seed}-'.encode())
