"""The dead-letter breaker opens on a mostly invalid stream and closes with hysteresis."""

from __future__ import annotations

from tokenshare.streams.breaker import DeadLetterBreaker


def test_opens_samples_and_closes() -> None:
    b = DeadLetterBreaker(window=1_000, min_inputs=200, sample_every=10)
    assert b.record(valid=100, invalid=50) is None and b.keep()
    states = [b.record(valid=5, invalid=95) for _ in range(10)]
    assert states.count("opened") == 1 and b.is_open
    kept = [b.keep() for _ in range(100)]
    assert sum(kept) == 10 and b.shed == 90
    # A healthy stream again: the ratio falls below the closing level.
    states = [b.record(valid=100, invalid=0) for _ in range(10)]
    assert states.count("closed") == 1 and not b.is_open and b.keep()


def test_a_few_bad_inputs_never_open_it() -> None:
    b = DeadLetterBreaker(window=1_000, min_inputs=200)
    for _ in range(100):
        assert b.record(valid=90, invalid=10) is None
    assert not b.is_open and b.invalid_ratio == 0.1
