"""The Go tool builder reuses what it built, and says what to do when it cannot build."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenshare.localstack.gotools import (
    ALERTMANAGER,
    PANELCHECK,
    PROMTOOL,
    TOOLS,
    _source_version,
    ensure_tool,
)
from tokenshare.localstack.kafka import LocalStackError


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TOKENSHARE_CACHE", str(tmp_path))
    return tmp_path


ROOT = Path(__file__).resolve().parents[3]


def test_tools_are_pinned_and_cached_per_module_version(cache: Path) -> None:
    assert set(TOOLS) == {"alertmanager", "prometheus", "promtool", "panelcheck"}
    assert ALERTMANAGER.pinned == "github.com/prometheus/alertmanager/cmd/alertmanager@v0.35.0"
    assert ALERTMANAGER.binary == cache / "go" / "alertmanager-v0.35.0" / "bin" / "alertmanager"
    assert TOOLS["prometheus"].home == PROMTOOL.home == cache / "go" / "prometheus-v0.316.0"


def test_a_built_tool_is_reused_without_go(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    PROMTOOL.binary.parent.mkdir(parents=True)
    PROMTOOL.binary.write_text("#!/bin/sh\n")
    PROMTOOL.binary.chmod(0o755)
    monkeypatch.setenv("PATH", "")
    monkeypatch.setenv("TOKENSHARE_GO", "/nonexistent/go")
    assert ensure_tool(PROMTOOL) == PROMTOOL.binary


def test_no_proxy_is_refused_with_what_to_do(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOPROXY", "off")
    with pytest.raises(LocalStackError) as refused:
        ensure_tool(ALERTMANAGER)
    message = str(refused.value)
    assert "GOPROXY is off" in message and "go env -w GOPROXY=" in message
    assert str(ALERTMANAGER.binary) in message
    assert not ALERTMANAGER.binary.exists()


def test_a_tool_of_this_repository_is_cached_per_source(cache: Path, tmp_path: Path) -> None:
    """panelcheck is built from deploy/grafana/panelcheck; a changed file builds anew."""
    assert PANELCHECK.source is not None and (PANELCHECK.source / "go.sum").is_file()
    assert PANELCHECK.version == _source_version(PANELCHECK.source)
    home = cache / "go" / f"panelcheck-{PANELCHECK.version}"
    assert PANELCHECK.binary == home / "bin" / "panelcheck"
    copy = tmp_path / "src"
    copy.mkdir()
    for name in ("go.mod", "main.go"):
        (copy / name).write_bytes((PANELCHECK.source / name).read_bytes())
    before = _source_version(copy)
    (copy / "main.go").write_text((copy / "main.go").read_text() + "\n// changed\n")
    assert _source_version(copy) != before


def test_prometheus_is_built_with_every_discovery_the_shipped_config_uses() -> None:
    """The build leaves service discovery out (remove_all_sd) but what deploy/ uses."""
    import yaml

    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    used = {
        key.removesuffix("_sd_configs")
        for job in config["scrape_configs"]
        for key in job
        if key.endswith("_sd_configs")
    }
    assert used, "the shipped config uses a discovery; this test guards the build tags for it"
    for tool in (TOOLS["prometheus"], PROMTOOL):
        assert "remove_all_sd" in tool.tags
        assert {f"enable_{kind}_sd" for kind in used} <= set(tool.tags)
