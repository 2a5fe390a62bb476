"""b. The peers: sentry-arroyo and Quix Streams doing tokenshare's job.

Each validates and enriches with tokenshare's own code and stores into
tokenshare's own raw_events (projection and daily_rollup view included) in an
embedded chDB of its own (`tokenshare.bench.peer_job`), in its own
virtualenv (`tokenshare.bench.venvs`) and its own process, on the same
loaded topics as tokenshare's full path (batched and single-event messages).
Timed by its consumer group's committed offsets, CPU from /proc, stored
count checked at the end (`tokenshare.bench.jobs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tokenshare.bench import venvs
from tokenshare.bench.config import TITLES
from tokenshare.bench.cpu import RunCost
from tokenshare.bench.env import BenchEnv, Kind
from tokenshare.bench.groups import GroupTimeout
from tokenshare.bench.jobs import JobError, JobSpec, timed_job
from tokenshare.bench.report import Section, cost_figures


@dataclass(frozen=True, slots=True)
class PeerRun:
    key: str  # figure key prefix
    name: str  # in ratios
    peer: venvs.Peer
    args: tuple[str, ...]
    what: str  # in figure labels


PEERS: tuple[PeerRun, ...] = (
    PeerRun(
        "arroyo",
        "arroyo",
        venvs.ARROYO,
        (),
        "RunTask(validate + enrich) -> BatchStep -> RunTask(insert_arrow) -> CommitOffsets",
    ),
    PeerRun(
        "quix_windowed",
        "Quix windowed",
        venvs.QUIX,
        ("--variant", "windowed"),
        "rows -> BatchingSink(insert_arrow), + 1-day tumbling window by origin bloc",
    ),
    PeerRun(
        "quix_plain",
        "Quix no window",
        venvs.QUIX,
        ("--variant", "plain"),
        "rows -> BatchingSink(insert_arrow), no window",
    ),
)
PEER_NAMES = {p.key: p.name for p in PEERS}
KINDS: tuple[Kind, ...] = ("batched", "single")


def measure(env: BenchEnv, done: Mapping[str, Section]) -> Section:
    section = Section("b", TITLES["b"])
    sizes = env.sizes
    pythons: dict[str, str] = {}
    for peer in dict.fromkeys(p.peer for p in PEERS):
        env.ui.step(f"b. virtualenv of {peer.label} (made once, then cached)")
        pythons[peer.name] = str(venvs.ensure(peer, env.logs / f"venv-{peer.name}.log"))
    path = venvs.pythonpath()
    failed: list[str] = []
    for p in PEERS:
        spec = JobSpec(p.key, pythons[p.peer.name], p.peer.module, p.args, path)
        for kind in KINDS:
            costs: list[RunCost] = []
            try:
                for run in range(1, sizes.runs + 1):
                    env.ui.step(f"b. {p.name}, {kind} messages, run {run}/{sizes.runs}")
                    load = env.topic(kind, run)
                    costs.append(timed_job(env, spec, load, sizes.sink_flush_rows))
                    env.ui.advance()
            except (JobError, GroupTimeout) as exc:  # one peer failing leaves the others' figures
                failed.append(f"{p.name}, {kind}: {exc}")
                continue
            events, per = sizes.of_kind(kind)
            cost_figures(
                section,
                f"{p.key}_{kind}",
                f"{p.peer.label}: {p.what}; {events:,} events, {per}",
                costs,
            )
    section.error = "\n".join(failed)
    for kind in KINDS:
        section.ratio(
            f"arroyo / Quix windowed, {kind}",
            section.value(f"arroyo_{kind}"),
            section.value(f"quix_windowed_{kind}"),
        )
    section.notes.append(
        f"inserts of up to {sizes.sink_flush_rows:,} rows or 1 s (arroyo: BatchStep; Quix: "
        "checkpoint every that many messages' rows or 1 s); arroyo commits after every insert "
        "(commit policy IMMEDIATE), Quix after every checkpoint"
    )
    section.notes.append(
        "each run a separate process in its peer's virtualenv, in a fresh consumer group; clock "
        "from the group's stable assignment to its commit of the topic's last offset; CPU is the "
        "process's user + system seconds over that time (embedded chDB included, broker not)"
    )
    return section
