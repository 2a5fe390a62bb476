"""`tokenshare catalog gaps` and `catalog apply` on an embedded store on disk, run as the
commands they are (each in its own process: one engine path per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.paths import ROOT

#: Rows of a lab the catalog does not know, and of one that the "old" catalog misses.
UNKNOWN = "acme-labs/acme-1-20260105"
REMOVED = "tngtech"

POPULATE = textwrap.dedent(
    """
    import json, sys
    import clickhouse_connect
    from pathlib import Path
    from tokenshare.producers.simulator import SimConfig, simulate
    from tokenshare.schema.catalog import DEFAULT_PATH, Catalog
    from tokenshare.schema.wire import encode
    from tokenshare.sinks.clickhouse import migrate
    from tokenshare.sinks.raw_events import RawEventWriter
    from tokenshare.streams.batch import Enricher, SourceMessage

    path, old_path, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    doc = json.loads(DEFAULT_PATH.read_text())
    doc["version"] = "old"
    del doc["authors"]["tngtech"]
    doc["models"] = {k: v for k, v in doc["models"].items() if not k.startswith("tngtech/")}
    old_path.write_text(json.dumps(doc))
    events = list(simulate(SimConfig(events=6000, seed=2)))
    events += [dict(events[i], event_id=f"acme-{i}", model="acme-labs/acme-1-20260105")
               for i in range(0, 600, 3)]
    events += [dict(events[i], event_id=f"tng-{i}", model="tngtech/deepseek-r1t2-chimera")
               for i in range(1, 600, 3)]
    client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    migrate(client, "tokenshare")
    messages = [SourceMessage("events", 0, o, encode(events[s : s + 500]))
                for o, s in enumerate(range(0, len(events), 500))]
    RawEventWriter(client, "tokenshare").write(
        Enricher(Catalog.load(old_path), 1 << 22).process(messages).rows)
    out.write_text(json.dumps(events))
    """
)


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenshare", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], list[dict[str, Any]]]:
    home = tmp_path_factory.mktemp("catalog-cli")
    data = home / "data"
    events_file = home / "events.json"
    subprocess.run(
        [sys.executable, "-c", POPULATE, str(data), str(home / "old.json"), str(events_file)],
        cwd=ROOT, check=True, timeout=600,
    )  # fmt: skip
    env = {
        **os.environ,
        "TOKENSHARE_HOME": str(home),
        "TOKENSHARE_CLICKHOUSE_DSN": f"chdb://{data}",
    }
    return env, json.loads(events_file.read_text())


def _tokens(e: dict[str, Any]) -> int:
    return int(e["prompt_tokens"]) + int(e["completion_tokens"])


def test_gaps_then_apply_then_gaps(store: tuple[dict[str, str], list[dict[str, Any]]]) -> None:
    env, events = store
    total = sum(_tokens(e) for e in events)
    gaps = _run(["catalog", "gaps", "--offline", "--format", "json", "--limit", "0"], env)
    assert gaps.returncode == 0, gaps.stderr
    doc = json.loads(gaps.stdout)
    by_slug = {s["slug"]: s for s in doc["slugs"]}
    acme = sum(_tokens(e) for e in events if e["model"] == UNKNOWN)
    assert by_slug[UNKNOWN]["tokens"] == acme and by_slug[UNKNOWN]["status"] == "missing"
    assert by_slug[UNKNOWN]["share"] == pytest.approx(acme / total)
    tng = sum(_tokens(e) for e in events if str(e["model"]).startswith(REMOVED + "/"))
    assert by_slug["tngtech/deepseek-r1t2-chimera"]["status"] == "known now"
    assert [s["tokens"] for s in doc["slugs"]] == sorted(
        (s["tokens"] for s in doc["slugs"]), reverse=True
    )
    labs = {lab["author"]: lab for lab in doc["labs"]}
    assert labs["acme-labs"]["tokens"] == acme
    # Stored as unidentified, but the current catalog knows the lab: not a missing lab,
    # its rows are stale instead.
    assert REMOVED not in labs
    assert doc["stale"]["stale_tokens"] == tng

    piped = _run(["catalog", "gaps", "--offline"], env)  # a table, complete when piped
    assert piped.returncode == 0, piped.stderr
    assert UNKNOWN in piped.stdout and "catalog apply" in piped.stdout

    applied = _run(["catalog", "apply"], env)
    assert applied.returncode == 0, applied.stderr
    assert "re-enriched" in applied.stdout and "tngtech/deepseek-r1t2-chimera" in applied.stdout

    after = json.loads(_run(["catalog", "gaps", "--offline", "--format", "json"], env).stdout)
    assert after["stale"]["stale_rows"] == 0
    assert {s["slug"] for s in after["slugs"]} >= {UNKNOWN}
    assert "tngtech/deepseek-r1t2-chimera" not in {s["slug"] for s in after["slugs"]}
    assert set(after["labs"][0]) >= {"author", "tokens", "share"}


def test_apply_refuses_a_server_dsn_without_confirmation(tmp_path: Path) -> None:
    env = {**os.environ, "TOKENSHARE_HOME": str(tmp_path),
           "TOKENSHARE_CLICKHOUSE_DSN": "http://default:x@127.0.0.1:9/"}  # fmt: skip
    out = _run(["catalog", "apply"], env)
    assert out.returncode == 1
    assert "--no-store-running" in out.stderr
