"""Every ClickHouse panel of deploy/grafana's dashboard, run against the embedded store of
a real pipeline the way Grafana's ClickHouse datasource runs it: its macros expanded,
sent by clickhouse-go v2 over HTTP (Native at the driver's protocol version). Each query
answers, with the types and rows the same SQL gives clickhouse-connect."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
import pytest

from tests.paths import ROOT
from tests.pipeline import Pipeline
from tests.weekly import WEEKLY, expected_final, rules_file
from tokenshare.localstack.gotools import PANELCHECK, ensure_tool
from tokenshare.processes import wait_until
from tokenshare.producers.kafka_producer import EventProducer
from tokenshare.producers.weekly_replay import load_week_totals, replay_events
from tokenshare.settings import Settings
from tokenshare.sinks.query import run_query, serving_url

DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "tokenshare.json"
#: A dashboard time range around the replayed weeks (2025-2026).
FROM, TO = "2025-06-01T00:00:00Z", "2026-12-31T00:00:00Z"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"rules_file": rules_file(tmp_path)})


def panels(addr: str, *variables: str) -> list[dict[str, Any]]:
    binary = ensure_tool(PANELCHECK)
    cmd = [str(binary), "-addr", addr, "-dashboard", str(DASHBOARD), "-from", FROM, "-to", TO]
    for v in variables:
        cmd += ["-var", v]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr + done.stdout[-4000:]
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def instant(text: str) -> datetime:
    """panelcheck's ``<RFC 3339> <location>`` as an aware datetime."""
    return datetime.fromisoformat(text.split(" ", 1)[0])


def test_every_clickhouse_panel_answers_grafanas_driver(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    with EventProducer(settings) as producer:
        events = list(replay_events(load_week_totals(WEEKLY)))
        for start in range(0, len(events), 50):
            producer.send_batch(events[start : start + 50])
    pipeline.wait_drained()
    want = len(expected_final())
    wait_until(
        lambda: run_query(settings, "SELECT count() FROM crossovers").rows[0][0] >= want,
        180,
        "the share stage's crossovers",
    )
    url = urlsplit(serving_url(settings))
    addr = f"{url.hostname}:{url.port}"
    client = clickhouse_connect.get_client(host=url.hostname, port=url.port)

    expected_panels = {
        p["title"]
        for p in json.loads(DASHBOARD.read_text())["panels"]
        for t in p.get("targets", [])
        if t["datasource"]["type"] == "grafana-clickhouse-datasource"
    }
    for variables in [(), ("dimension=model",)]:
        results = panels(addr, *variables)
        assert {r["panel"] for r in results} == expected_panels
        for r in results:
            assert "$__" not in r["sql"] and "${" not in r["sql"], r["sql"]
            same = client.query(r["sql"])
            types = [c["type"] for c in r["columns"]]
            assert types == [t.name for t in same.column_types], r["panel"]
            assert len(r["rows"]) == len(same.result_rows), r["panel"]
            for index, column in enumerate(r["columns"]):
                if column["type"].startswith(("Date", "DateTime")):
                    assert column["scan_type"] == "time.Time", (r["panel"], column)
                if column["type"].startswith("DateTime"):  # the same instants
                    got = [instant(row[index]) for row in r["rows"]]
                    ref = [row[index] for row in same.result_rows]
                    assert [g.timestamp() for g in got] == [
                        (x if x.tzinfo else x.replace(tzinfo=got[0].tzinfo)).timestamp()
                        for x in ref
                    ], r["panel"]
                if column["type"] in ("UInt64", "Int64", "String", "LowCardinality(String)"):
                    assert [row[index] for row in r["rows"]] == [
                        str(row[index]) for row in same.result_rows
                    ], (r["panel"], column["name"])
        by_panel = {r["panel"]: r for r in results}
        # The share panels have rows: the replay fills every week, and crossovers fired.
        for title, result in by_panel.items():
            if not title.startswith("Late rows"):  # no late events in an in-order replay
                assert result["rows"], f"{title} returned no rows: {result['sql']}"
        weekly = by_panel["Weekly token share by origin bloc"]
        assert [c["scan_type"] for c in weekly["columns"]] == ["time.Time", "string", "float64"]
        shares = [float(row[2]) for row in weekly["rows"]]
        assert all(0.0 <= s <= 1.0 for s in shares)
        assert len(by_panel["Crossovers"]["rows"]) >= want
    client.close()
