"""The wheel ships the page and the chart library fetched at build time (ignored by git,
so hatch needs it listed as an artifact)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from hatchling.builders.wheel import WheelBuilder

from tests.paths import ROOT
from tokenshare.dashboard import vendor


def test_wheel_holds_the_page_and_the_vendored_library(tmp_path: Path) -> None:
    vendor.ensure()
    [wheel] = WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])
    names = set(zipfile.ZipFile(wheel).namelist())
    static = "tokenshare/dashboard/static"
    for name in ("index.html", "dashboard.js", "dashboard.css"):
        assert f"{static}/{name}" in names, name
    for name in [*vendor.UPLOT.files.values(), "uplot.json"]:
        assert f"{static}/vendor/{name}" in names, name
