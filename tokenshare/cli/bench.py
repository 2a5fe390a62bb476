"""`tokenshare bench`: every benchmark in one run, with ratios and targets."""

from __future__ import annotations

import os
import shlex
import signal
import sys
from pathlib import Path

import click

from tokenshare.cli.context import console, fail


def invoked_as() -> str:
    """The command line this process was started with, as a user would type it."""
    argv = list(sys.argv)
    if argv and argv[0].endswith("__main__.py"):
        argv[:1] = ["python", "-m", "tokenshare"]
    command = shlex.join(argv)
    return f"make bench ({command})" if os.environ.get("MAKELEVEL") else command


@click.command()
@click.option("--smoke", is_flag=True, help="Tiny counts, one run each; for CI (no RESULTS.md).")
@click.option(
    "--only",
    metavar="a,b,...",
    help="Run these measures only (a b c d e f g profile); default all.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the results (default bench/RESULTS.md; --smoke writes only if given).",
)
@click.option(
    "--rate",
    "fresh_rate",
    type=click.IntRange(min=100),
    help="Offered load of the freshness measure, events/s (default 20000).",
)
def bench(smoke: bool, only: str | None, out: Path | None, fresh_rate: int | None) -> None:
    """Benchmark the pipeline against its limit and its peers, in one run.

    Starts its own Kafka broker (free ports, temporary folder), loads one event
    set and measures: (a) the raw consumer limit, (b) Faust baselines,
    (c) the worker and store end to end, (d) producers, (e) the ClickHouse
    sink, (f) freshness at a fixed load, (g) peak memory, the peers (sentry-arroyo,
    Quix Streams) and the consume-and-store floors; then profiles the worker's
    hot path. Prints every figure with ratios against the baselines
    of the same run and marks the targets met or missed.
    """
    from tokenshare.bench.config import parse_only, sizes_for
    from tokenshare.bench.runner import DEFAULT_OUT, run_bench
    from tokenshare.gc_policy import tune_for_throughput

    try:
        measures = parse_only(only)
    except ValueError as exc:
        fail(str(exc), "pass --only with a comma-separated list, e.g. --only a,c")
    target = out if out is not None or smoke else DEFAULT_OUT
    # A SIGTERM (a timeout, a supervisor) unwinds like Ctrl-C: the broker and every
    # process the bench started are stopped, none is left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # Producers and the sink measured in this process run as the CLI runs them.
    tune_for_throughput()
    result = run_bench(
        sizes=sizes_for(smoke, fresh_rate),
        only=measures,
        out=target,
        command=invoked_as(),
        console=console,
    )
    if result.failed:
        fail(
            f"measure(s) {', '.join(result.failed)} failed (see above)",
            "read the error, fix the cause, and rerun with --only " + ",".join(result.failed),
        )
