"""A producer-only install stays small: the heavy packages come only with extras."""

from __future__ import annotations

import email
import importlib.metadata
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hatchling.builders.wheel import WheelBuilder
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tests.paths import ROOT

#: What a gateway that only produces must not have to install.
HEAVY = {
    "chdb",
    "pyarrow",
    "matplotlib",
    "numpy",
    "faust-streaming",
    "clickhouse-connect",
    "aiokafka",
    "aiohttp",
}
#: Their import names.
HEAVY_MODULES = (
    "chdb",
    "pyarrow",
    "matplotlib",
    "numpy",
    "faust",
    "clickhouse_connect",
    "aiokafka",
)


@pytest.fixture(scope="module")
def metadata(tmp_path_factory: pytest.TempPathFactory) -> email.message.Message:
    out = tmp_path_factory.mktemp("wheel")
    [wheel] = WheelBuilder(str(ROOT)).build(directory=str(out), versions=["standard"])
    with zipfile.ZipFile(wheel) as zf:
        [name] = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(zf.read(name))


def _requirements(metadata: email.message.Message) -> list[Requirement]:
    return [Requirement(line) for line in metadata.get_all("Requires-Dist") or []]


def _names(reqs: list[Requirement], extra: str | None) -> set[str]:
    """Distribution names required with `extra` (None: the base install)."""
    env = {"extra": extra or ""}
    return {
        r.name.lower().replace("_", "-")
        for r in reqs
        if (r.marker is None and extra is None) or (r.marker is not None and r.marker.evaluate(env))
    }


def test_base_requirements_are_the_producer_and_the_cli(
    metadata: email.message.Message,
) -> None:
    base = _names(_requirements(metadata), None)
    assert {"kafka-python", "pydantic", "orjson"} <= base
    assert not base & HEAVY, sorted(base & HEAVY)


def test_each_process_has_an_extra_and_all_pulls_them(metadata: email.message.Message) -> None:
    reqs = _requirements(metadata)
    extras = set(metadata.get_all("Provides-Extra") or [])
    assert {"http", "worker", "store", "analyst", "all", "dev"} <= extras
    assert "faust-streaming" in _names(reqs, "worker")
    assert {"chdb", "pyarrow"} <= _names(reqs, "store")
    assert "matplotlib" in _names(reqs, "analyst")
    assert "opentelemetry-proto" in _names(reqs, "http")
    # `all` is the union of the process extras, and `dev` (what `make test` installs) holds it.
    processes = set().union(*(_names(reqs, e) for e in extras - {"all", "dev"}))
    assert _names(reqs, "all") == processes
    assert processes <= _names(reqs, "dev")


def test_python_range_and_license(metadata: email.message.Message) -> None:
    python = SpecifierSet(metadata["Requires-Python"])
    assert [v for v in ("3.10", "3.11", "3.12", "3.13", "3.14") if v in python] == [
        "3.11",
        "3.12",
        "3.13",
    ]
    classifiers = set(metadata.get_all("Classifier") or [])
    for minor in ("3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {minor}" in classifiers
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert "Apache License" in (ROOT / "LICENSE").read_text()


def _imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
    ).stdout
    names = set(out.split())
    return names | {name.split(".")[0] for name in names}


def test_the_producer_imports_nothing_heavy() -> None:
    loaded = _imported_after("import tokenshare.producers.kafka_producer")
    assert "tokenshare.producers.kafka_producer" in loaded  # the import did happen
    assert not loaded & set(HEAVY_MODULES), sorted(loaded & set(HEAVY_MODULES))


def test_the_cli_group_imports_nothing_heavy() -> None:
    loaded = _imported_after("import tokenshare.cli.main")
    assert not loaded & set(HEAVY_MODULES), sorted(loaded & set(HEAVY_MODULES))


def test_version_is_the_installed_distribution() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tokenshare", "--version"],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(ROOT),
    ).stdout
    assert out.strip() == f"tokenshare, version {importlib.metadata.version('tokenshare')}"
