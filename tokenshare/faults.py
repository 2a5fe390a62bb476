"""Fault injection for the reliability suite. Inert unless TOKENSHARE_FAULTS is set.

The suite starts real processes with, for example,

    TOKENSHARE_FAULTS="store.after_insert=0.3,worker.after_publish=0.2,store.down_s=5"

and each named point either kills the process on the spot (SIGKILL: no
cleanup, no flush, like a power cut) with the given probability, or, for
`*_s` entries, fails for that many seconds from the first time the point is
reached (a store whose first fetch comes late still meets the whole outage
at its first writes). The points sit
exactly where the checkpoint order could break if it were wrong.
"""

from __future__ import annotations

import os
import random
import signal
import time


def _parse(spec: str) -> dict[str, float]:
    out = {}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        name, _, value = item.partition("=")
        out[name] = float(value or 1)
    return out


FAULTS = _parse(os.environ.get("TOKENSHARE_FAULTS", ""))
_rng = random.Random(os.environ.get("TOKENSHARE_FAULT_SEED", str(os.getpid())))
_FIRST_REACHED: dict[str, float] = {}  # outage point -> monotonic time


def crash_point(name: str) -> None:
    """SIGKILL this process here with the configured probability."""
    p = FAULTS.get(name)
    if p and _rng.random() < p:
        os.kill(os.getpid(), signal.SIGKILL)


def failing(name: str, faults: dict[str, float] | None = None) -> bool:
    """True while the `<name>_s` outage configured for this process lasts, counted
    from the first call for `name`."""
    seconds = (FAULTS if faults is None else faults).get(f"{name}_s")
    if not seconds:
        return False
    now = time.monotonic()
    return now - _FIRST_REACHED.setdefault(name, now) < seconds


def chance(name: str) -> bool:
    """True with the configured probability (for faults that are not crashes)."""
    p = FAULTS.get(name)
    return bool(p) and _rng.random() < float(p or 0)
