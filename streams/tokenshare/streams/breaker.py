"""Dead-letter breaker: a stream that is mostly invalid is a broken producer,
not bad luck, and copying all of it to the dead-letter topic helps no one.

The breaker watches the share of invalid inputs over the last `window`
inputs. Past `open_ratio` it opens: dead letters are sampled (one in
`sample_every`, so the reason stays visible) and counted, and the worker
publishes one alert. It closes again once the share falls below
`close_ratio` (hysteresis, so it does not flap), with a second alert.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class DeadLetterBreaker:
    window: int = 2_000
    open_ratio: float = 0.9
    close_ratio: float = 0.5
    min_inputs: int = 500
    sample_every: int = 100
    is_open: bool = False
    shed: int = 0  # invalid inputs counted but not copied while open
    _recent: deque[tuple[int, int]] = field(default_factory=deque)  # (valid, invalid) per batch
    _valid: int = 0
    _invalid: int = 0
    _seen_open: int = 0

    def record(self, valid: int, invalid: int) -> str | None:
        """Account one batch; returns "opened" or "closed" when the state changes."""
        self._recent.append((valid, invalid))
        self._valid += valid
        self._invalid += invalid
        while self._valid + self._invalid - sum(self._recent[0]) >= self.window:
            old_valid, old_invalid = self._recent.popleft()
            self._valid -= old_valid
            self._invalid -= old_invalid
        total = self._valid + self._invalid
        ratio = self._invalid / total if total else 0.0
        if not self.is_open and total >= self.min_inputs and ratio >= self.open_ratio:
            self.is_open = True
            return "opened"
        if self.is_open and ratio < self.close_ratio:
            self.is_open = False
            return "closed"
        return None

    def keep(self) -> bool:
        """Whether this dead letter is copied to the topic (always, unless open)."""
        if not self.is_open:
            return True
        self._seen_open += 1
        if self._seen_open % self.sample_every == 1:
            return True
        self.shed += 1
        return False

    @property
    def invalid_ratio(self) -> float:
        total = self._valid + self._invalid
        return self._invalid / total if total else 0.0
