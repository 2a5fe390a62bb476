"""The shipped Prometheus files pass promtool: the config and rules are valid, and the
alerting rules' unit tests (deploy/prometheus/rules.test.yml) pass.

promtool v3.16.0 (module v0.316.0) is built from the Go module proxy once
(tokenshare.localstack.gotools)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.paths import ROOT
from tokenshare.localstack.gotools import PROMTOOL, ensure_tool

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ensure_tool(PROMTOOL)), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def load(name: str) -> Any:
    return yaml.safe_load((PROMETHEUS_DIR / name).read_text())


def alert_names() -> set[str]:
    return {r["alert"] for g in load("rules.yml")["groups"] for r in g["rules"] if "alert" in r}


def test_rules_are_valid() -> None:
    done = promtool("check", "rules", "rules.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in done.stdout


def test_rule_unit_tests_pass() -> None:
    done = promtool("test", "rules", "rules.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_every_alert_is_tested_firing_and_silent() -> None:
    """Each alert of rules.yml has a case where it fires and one where it does not."""
    fires: set[str] = set()
    silent: set[str] = set()
    for case in load("rules.test.yml")["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check["exp_alerts"] else silent).add(check["alertname"])
    assert fires == alert_names() and silent == alert_names()


def test_a_broken_expectation_fails(tmp_path: Path) -> None:
    """promtool really compares: the same tests expecting another label fail."""
    shutil.copy(PROMETHEUS_DIR / "rules.yml", tmp_path)
    tests = load("rules.test.yml")
    first = next(c for c in tests["tests"] for a in c["alert_rule_test"] if a["exp_alerts"])
    for check in first["alert_rule_test"]:
        for alert in check["exp_alerts"]:
            alert["exp_labels"]["severity"] = "none"
    (tmp_path / "rules.test.yml").write_text(yaml.safe_dump(tests))
    done = promtool("test", "rules", "rules.test.yml", cwd=tmp_path)
    assert done.returncode != 0 and "FAILED" in done.stdout + done.stderr


def test_config_is_valid(tmp_path: Path) -> None:
    """The compose config, its rule file read from the repository instead of the mount."""
    config = load("prometheus.yml")
    config["rule_files"] = [str(PROMETHEUS_DIR / "rules.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    done = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
