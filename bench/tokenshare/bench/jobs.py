"""One timed run of a job process (a peer or a floor) against a loaded topic.

The process reads the topic in a consumer group of its own. The clock starts
when that group is stable with members and stops when it has committed the
topic's last offset (`tokenshare.bench.groups`); CPU is the process tree's
user + system time between the two (`tokenshare.bench.cpu`). Then the
process is stopped (SIGTERM), counts its own table and writes the count,
which must equal the events loaded: a run that stored fewer or more fails.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson

from tokenshare.bench.cpu import CpuMeter, RunCost
from tokenshare.bench.env import BenchEnv, Load
from tokenshare.bench.groups import GroupWatch


class JobError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What to start: `python -m module` with this interpreter and these arguments."""

    name: str  # short, for groups, folders and logs
    python: str
    module: str
    args: tuple[str, ...] = ()
    pythonpath: str | None = None


def timed_job(env: BenchEnv, spec: JobSpec, load: Load, flush_rows: int) -> RunCost:
    run_id = f"{spec.name}-{load.kind}-{uuid.uuid4().hex[:6]}"
    folder = env.home / "jobs" / run_id
    folder.mkdir(parents=True)
    result = folder / "result.json"
    group = f"bench-{run_id}"
    topic = load.settings.events_topic
    per_message = env.sizes.batch if load.kind == "batched" else 1
    args = [
        "--bootstrap", env.kafka.bootstrap, "--topic", topic, "--group", group,
        "--events-per-message", str(per_message), "--flush-rows", str(flush_rows),
        "--chdb", str(folder / "chdb"), "--state-dir", str(folder / "state"),
        "--result", str(result), *spec.args,
    ]  # fmt: skip
    log = env.logs / f"job-{run_id}.log"
    proc = env.spawn_python(spec.python, spec.module, args, log, pythonpath=spec.pythonpath)
    watch = GroupWatch(load.settings, run_id)

    def check() -> None:
        if proc.poll() is not None:
            raise JobError(f"{spec.name} exited ({proc.returncode}):\n{tail(log)}")

    try:
        end = watch.end_offsets(topic)
        t0 = watch.wait_stable(group, 180, check)
        meter = CpuMeter([proc.pid])
        meter.start()
        deadline = t0 + 300 + load.events / 200  # generous: a loaded machine is slow
        t1 = watch.wait_committed(group, topic, end, deadline, check)
        cpu = sum(meter.read().values())
        proc.send_signal(15)
        stored = wait_result(proc, result, log, spec.name)
    finally:
        watch.close()
        env.stop(proc, timeout=30)
    if stored != load.events:
        raise JobError(f"{spec.name} stored {stored:,} of {load.events:,} events")
    return RunCost(load.events, t1 - t0, cpu)


def wait_result(proc: subprocess.Popen[bytes], result: Path, log: Path, name: str) -> int:
    deadline = time.monotonic() + 60
    while not result.exists():
        if proc.poll() is not None and not result.exists():
            raise JobError(f"{name} exited ({proc.returncode}) without a result:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise JobError(f"{name} wrote no result within 60 s of SIGTERM:\n{tail(log)}")
        time.sleep(0.05)
    return int(orjson.loads(result.read_bytes())["stored"])


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
