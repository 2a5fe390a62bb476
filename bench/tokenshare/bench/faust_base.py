"""What the two Faust baseline scripts share: arguments, the app, and the stopwatch.

Each baseline runs in its own process (`python -m tokenshare.bench.faust_*`),
reads the given events topic from the start in a fresh consumer group, and
writes `{"events", "seconds", "rate", "startup"}` as JSON once it has handled
`--events` events, then stops itself.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path

import faust
import orjson

STARTED = time.monotonic()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--datadir", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    return parser.parse_args()


def make_app(args: argparse.Namespace) -> faust.App:
    return faust.App(
        args.app_id,
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        datadir=str(args.datadir),
        topic_partitions=args.partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
    )


class Stopwatch:
    """Counts handled events; at the target, writes the result and stops the worker."""

    def __init__(self, target: int, result: Path) -> None:
        self.target = target
        self.result = result
        self.seen = 0
        self.first = 0.0

    def tick(self) -> None:
        if self.seen == 0:
            self.first = time.perf_counter()
        self.seen += 1
        if self.seen == self.target:
            seconds = time.perf_counter() - self.first
            doc = {
                "events": self.seen,
                "seconds": seconds,
                "rate": self.seen / seconds,
                "startup": time.monotonic() - STARTED - seconds,
            }
            partial = self.result.with_suffix(".partial")
            partial.write_bytes(orjson.dumps(doc))
            partial.rename(self.result)
            os.kill(os.getpid(), signal.SIGTERM)


def run(app: faust.App) -> None:
    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()
