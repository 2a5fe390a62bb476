"""The wheel installs one top-level name, and every module has one name."""

from __future__ import annotations

import zipfile
from pathlib import Path

from hatchling.builders.wheel import WheelBuilder

from tests.paths import ROOT


def test_wheel_holds_only_the_tokenshare_package(tmp_path: Path) -> None:
    [wheel] = WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"tokenshare"}
    for module in (
        "tokenshare/cli/main.py",
        "tokenshare/producers/simulator.py",
        "tokenshare/streams/app.py",
        "tokenshare/sinks/store.py",
        "tokenshare/schema/event.py",
        "tokenshare/schema/clickhouse/001_raw_events.sql",
        "tokenshare/streams/shares/rules.toml",
        "tokenshare/bench/runner.py",
    ):
        assert module in names, module
    assert not [name for name in names if "__pycache__" in name]


def test_each_source_file_is_one_module() -> None:
    """No __init__.py above a portion: `producers` etc. are not packages of their own."""
    for part in ("producers", "streams", "sinks", "schema", "bench"):
        assert not (ROOT / part / "__init__.py").exists(), part
        assert not (ROOT / part / "tokenshare" / "__init__.py").exists(), part
        assert (ROOT / part / "tokenshare" / part / "__init__.py").exists(), part
    assert not (ROOT / "tokenshare" / "__init__.py").exists()
