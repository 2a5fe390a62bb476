"""Fetch the dashboard's charting library at build time (``make install``).

The page loads nothing from the network: uPlot's minified build is taken from the
npm registry with ``npm pack`` (the ordinary client, one pinned version), checked
against the registry's published sha512 integrity, cached under
``${TOKENSHARE_CACHE:-~/.cache/tokenshare}/npm`` and copied into ``static/vendor/``
(ignored by git), with its licence and a record of where it came from.

Run it with ``python -m tokenshare.dashboard.vendor``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

STATIC = Path(__file__).with_name("static")
VENDOR = STATIC / "vendor"


@dataclass(frozen=True, slots=True)
class NpmAsset:
    """One pinned npm package and the files the page needs from its tarball."""

    package: str
    version: str
    integrity: str  # the registry's dist.integrity: "sha512-<base64>"
    licence: str
    files: dict[str, str]  # path inside the tarball -> name under static/vendor

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"

    @property
    def tarball(self) -> str:
        return f"{self.package}-{self.version}.tgz"

    @property
    def record(self) -> Path:
        return VENDOR / f"{self.package}.json"


#: uPlot (MIT, https://github.com/leeoniya/uPlot): small, fast time-series charts.
UPLOT = NpmAsset(
    package="uplot",
    version="1.6.32",
    integrity="sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==",
    licence="MIT",
    files={
        "package/dist/uPlot.iife.min.js": "uPlot.iife.min.js",
        "package/dist/uPlot.min.css": "uPlot.min.css",
        "package/LICENSE": "uPlot.LICENSE",
    },
)
ASSETS: tuple[NpmAsset, ...] = (UPLOT,)


class VendorError(RuntimeError):
    """The library could not be fetched or did not match its pinned integrity."""


def cache_dir() -> Path:
    """``${TOKENSHARE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/tokenshare}/npm``, as the jars' cache."""
    root = os.environ.get("TOKENSHARE_CACHE")
    if root:
        return Path(root) / "npm"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "tokenshare" / "npm"


def integrity_of(path: Path) -> str:
    """npm's Subresource Integrity string of a file."""
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode()


def is_vendored(asset: NpmAsset = UPLOT) -> bool:
    """Whether ``static/vendor`` holds this exact version of every file."""
    if not asset.record.is_file() or not all((VENDOR / n).is_file() for n in asset.files.values()):
        return False
    recorded = json.loads(asset.record.read_text())
    return bool(recorded.get("version") == asset.version)


def fetch(asset: NpmAsset, cache: Path | None = None) -> Path:
    """The verified tarball in the cache, packed from the registry on first use."""
    folder = cache or cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tarball = folder / asset.tarball
    if not tarball.is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise VendorError("npm is not installed: `apt-get install -y npm`, then `make install`")
        done = subprocess.run(
            [npm, "pack", asset.spec, "--pack-destination", str(folder), "--silent"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or not tarball.is_file():
            raise VendorError(f"`npm pack {asset.spec}` failed: {done.stderr.strip()[-500:]}")
    found = integrity_of(tarball)
    if found != asset.integrity:
        tarball.unlink()  # never keep a tarball that is not the pinned one
        raise VendorError(
            f"{asset.tarball} has integrity {found}, not the pinned {asset.integrity}; "
            "it was removed from the cache, run `make install` again"
        )
    return tarball


def install(asset: NpmAsset = UPLOT, cache: Path | None = None) -> list[Path]:
    """Copy the asset's files into ``static/vendor`` (from the cache; fetched if absent)."""
    tarball = fetch(asset, cache)
    VENDOR.mkdir(parents=True, exist_ok=True)
    written = []
    with tarfile.open(tarball, "r:gz") as archive:
        for member, name in asset.files.items():
            source = archive.extractfile(member)
            if source is None:
                raise VendorError(f"{asset.tarball} has no file {member}")
            target = VENDOR / name
            target.write_bytes(source.read())
            written.append(target)
    asset.record.write_text(
        json.dumps(
            {
                "package": asset.package,
                "version": asset.version,
                "licence": asset.licence,
                "source": f"npm registry, `npm pack {asset.spec}`",
                "integrity": asset.integrity,
                "files": asset.files,
            },
            indent=2,
        )
        + "\n"
    )
    return written


def ensure() -> None:
    """Vendor every asset that is missing or of another version."""
    for asset in ASSETS:
        if not is_vendored(asset):
            install(asset)


def main() -> None:
    try:
        ensure()
    except VendorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    for asset in ASSETS:
        print(f"vendored {asset.spec} ({asset.licence}) into {VENDOR}")


if __name__ == "__main__":
    main()
