"""The worker's share stage posts its alerts to a real Alertmanager: the weekly replay's
final crossovers are all there, read back from Alertmanager's API with their labels.

The same replay as tests/integration/end_to_end/test_shares_pipeline.py; the only
difference is TOKENSHARE_ALERTMANAGER_URL in the worker's settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pipeline import Pipeline
from tests.promstack import alertmanager, get_json
from tests.weekly import WEEKLY, expected_final, rules_file
from tokenshare.processes import wait_until
from tokenshare.producers.kafka_producer import EventProducer
from tokenshare.producers.weekly_replay import load_week_totals, replay_events
from tokenshare.settings import Settings

CONFIG = {
    "route": {"receiver": "none", "group_by": ["alertname", "dimension", "window"]},
    "receivers": [{"name": "none"}],
}


@pytest.fixture
def alertmanager_url(tmp_path: Path) -> Iterator[str]:
    with alertmanager(tmp_path / "alertmanager", CONFIG) as url:
        yield url


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, alertmanager_url: str) -> Settings:
    return settings.model_copy(
        update={"rules_file": rules_file(tmp_path), "alertmanager_url": alertmanager_url}
    )


def final_crossovers(url: str) -> set[tuple[str, str]]:
    alerts: list[dict[str, Any]] = get_json(f"{url}/api/v2/alerts?filter=rule%3D%22crossover%22")
    return {
        (a["labels"]["window"], a["labels"]["subject"])
        for a in alerts
        if a["annotations"]["status"] == "final"
    }


def test_share_stage_alerts_reach_alertmanager(pipeline: Pipeline, alertmanager_url: str) -> None:
    events = list(replay_events(load_week_totals(WEEKLY)))
    with EventProducer(pipeline.settings) as producer:
        for start in range(0, len(events), 50):
            producer.send_batch(events[start : start + 50])
    pipeline.wait_drained()
    want = set(expected_final())
    wait_until(
        lambda: final_crossovers(alertmanager_url) >= want,
        180,
        f"Alertmanager to hold the final crossovers {sorted(want)}",
    )
    assert final_crossovers(alertmanager_url) == want, pipeline.logs()
    alerts = get_json(f"{alertmanager_url}/api/v2/alerts?filter=rule%3D%22crossover%22")
    for alert in alerts:
        labels = alert["labels"]
        assert labels["alertname"] == "TokenshareCrossover" and labels["service"] == "tokenshare"
        assert labels["dimension"] == "origin_bloc" and labels["window_kind"]
        assert alert["annotations"]["summary"] and alert["status"]["state"] == "active"
        assert alert["generatorURL"].endswith(f":{pipeline.settings.worker_web_port}/alerts")
