"""Prometheus, Alertmanager and panelcheck for local runs and tests, built once with Go.

Each tool is pinned (module and version), built with the machine's ``go`` into
``<cache_root()>/go/<module>-<version>/bin`` and reused from there: a CI cache of
``~/.cache/tokenshare`` builds each of them once. ``ensure_tool`` shows a rich status
line with the package being compiled; ``GOPROXY``, ``GOFLAGS`` and ``GOTOOLCHAIN`` come
from the environment (``go env``), as for any other Go build. Without a ``go`` new
enough (1.26.7, what Prometheus' go.mod asks), Go's own toolchain module is fetched
from the same proxy into the cache, as ``GOTOOLCHAIN`` switching would.

Most tools build with ``go install <package>@<version>``. Alertmanager's module
embeds its web UI (``//go:embed app/dist``), which upstream builds with npm and leaves
out of the module zip, so ``go install`` of it fails with "pattern app/dist: no
matching files found"; for such a tool the module is fetched with ``go mod download``,
the missing files are written as placeholder pages, and ``go build`` runs in that
copy. Only the UI is affected: the HTTP API, routing, grouping and silences are
the released code.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import orjson
from rich.console import Console

from tokenshare.localstack.kafka import LocalStackError, _locked, _tail, cache_root

#: What a placeholder for an asset left out of a module zip says.
_PLACEHOLDER = (
    "<!doctype html><title>{name}</title>"
    "<p>{name} {version} built without its web UI; the HTTP API is complete.</p>\n"
)
_GO_HINT = (
    "install Go 1.26.7 or later (https://go.dev/dl) and put `go` on PATH, or set "
    "TOKENSHARE_GO to its path"
)
#: The oldest go that builds every pinned tool (Prometheus v0.316.0's go.mod), and
#: the release fetched when the machine has none as new.
MIN_GO = (1, 26, 7)
GO_RELEASE = "1.26.8"
_BUILD_TIMEOUT_S = 3600.0  # Prometheus takes several minutes on two cores


@dataclass(frozen=True, slots=True)
class GoTool:
    """One command of a Go module, pinned to a released version."""

    name: str  #: the binary, e.g. ``promtool``
    module: str  #: e.g. ``github.com/prometheus/prometheus``
    package: str  #: the command's folder inside the module, e.g. ``cmd/promtool``
    version: str  #: a released tag served by the module proxy
    #: Files that ``//go:embed`` needs but the module zip leaves out (generated upstream);
    #: written as placeholders, which forces a build from a module copy.
    missing_assets: tuple[str, ...] = ()
    #: A Go string variable set to ``release`` at link time (``-ldflags -X``), so
    #: ``--version`` and the build-info metric name it, as in release binaries.
    version_var: str = ""
    #: The release the tag stands for (Prometheus 3.16.0 is module version v0.316.0).
    release: str = ""
    #: A Go module of this repository (its go.mod and go.sum pin the dependencies),
    #: built with ``go build`` there; `version` is then a hash of its files.
    source: Path | None = None
    #: Go build tags (``-tags``), e.g. to leave out code the tests never run.
    tags: tuple[str, ...] = ()

    @property
    def import_path(self) -> str:
        return f"{self.module}/{self.package}"

    @property
    def pinned(self) -> str:
        return f"{self.import_path}@{self.version}"

    @property
    def home(self) -> Path:
        """The cache folder of this module version (shared by its commands)."""
        return cache_root() / "go" / f"{self.module.rsplit('/', 1)[-1]}-{self.version}"

    @property
    def binary(self) -> Path:
        return self.home / "bin" / self.name

    def is_built(self) -> bool:
        return self.binary.is_file() and os.access(self.binary, os.X_OK)


ALERTMANAGER = GoTool(
    "alertmanager",
    "github.com/prometheus/alertmanager",
    "cmd/alertmanager",
    "v0.35.0",
    missing_assets=("ui/app/dist/elm/index.html", "ui/app/dist/mantine/index.html"),
    version_var="github.com/prometheus/common/version.Version",
    release="0.35.0",
)
#: Prometheus' service discovery plugins (cloud SDKs, Kubernetes) are most of its build
#: time; only DNS discovery is used (deploy/prometheus/prometheus.yml), the tests scrape
#: static targets. Upstream's build tags for this: plugins/plugin_*.go.
_PROMETHEUS_TAGS = ("remove_all_sd", "enable_dns_sd")
PROMETHEUS = GoTool(
    "prometheus",
    "github.com/prometheus/prometheus",
    "cmd/prometheus",
    "v0.316.0",
    version_var="github.com/prometheus/common/version.Version",
    release="3.16.0",
    tags=_PROMETHEUS_TAGS,
)
PROMTOOL = GoTool(
    "promtool",
    "github.com/prometheus/prometheus",
    "cmd/promtool",
    "v0.316.0",
    version_var="github.com/prometheus/common/version.Version",
    release="3.16.0",
    tags=_PROMETHEUS_TAGS,
)


def _source_version(folder: Path) -> str:
    """``src-<hash of the module's files>``: a changed source builds anew."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*")):
        if path.is_file() and path.suffix in (".go", ".mod", ".sum"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return f"src-{digest.hexdigest()[:12]}"


_PANELCHECK_SOURCE = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "panelcheck"
#: Runs the Grafana dashboard's ClickHouse panels with clickhouse-go v2 over HTTP,
#: as Grafana's ClickHouse datasource does (deploy/grafana/panelcheck).
PANELCHECK = GoTool(
    "panelcheck",
    "tokenshare.local/panelcheck",
    ".",
    _source_version(_PANELCHECK_SOURCE) if _PANELCHECK_SOURCE.is_dir() else "src-missing",
    source=_PANELCHECK_SOURCE,
)

#: Every tool, by binary name (``tokenshare stack tools``, ``make tools``).
TOOLS: dict[str, GoTool] = {t.name: t for t in (ALERTMANAGER, PROMETHEUS, PROMTOOL, PANELCHECK)}


def go_binary(console: Console | None = None) -> str:
    """A ``go`` command new enough for the pinned tools: ``$TOKENSHARE_GO``, ``go`` on
    PATH or /usr/local/go; failing those, Go's own toolchain module
    (``golang.org/toolchain``, the one ``GOTOOLCHAIN`` switching fetches), from the Go
    module proxy into the cache. Distribution packages are often older (Debian 12: 1.19)."""
    found = []
    for candidate in (os.environ.get("TOKENSHARE_GO"), shutil.which("go"), "/usr/local/go/bin/go"):
        if candidate and os.access(candidate, os.X_OK):
            version = _go_version(candidate)
            if version >= MIN_GO:
                return candidate
            found.append(f"{candidate} is go{'.'.join(map(str, version))}")
    try:
        return str(_toolchain(console or Console(stderr=True)))
    except (OSError, zipfile.BadZipFile) as exc:
        have = f" ({'; '.join(found)})" if found else ""
        raise LocalStackError(
            f"no go {'.'.join(map(str, MIN_GO))} or later was found{have}, and go{GO_RELEASE} "
            f"could not be fetched from the Go module proxy: {exc}; {_GO_HINT}"
        ) from exc


def _go_version(go: str) -> tuple[int, ...]:
    done = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=False)
    match = re.match(r"go(\d+)\.(\d+)(?:\.(\d+))?", done.stdout.strip())
    return tuple(int(g or 0) for g in match.groups()) if match else (0,)


def _toolchain(console: Console) -> Path:
    """``bin/go`` of ``golang.org/toolchain@v0.0.1-go<GO_RELEASE>.<os>-<arch>``, once."""
    root = cache_root() / "go" / f"toolchain-go{GO_RELEASE}"
    go = root / "bin" / "go"
    if go.is_file():
        return go
    with _locked(root.parent / ".toolchain.lock"):
        if go.is_file():
            return go
        arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())
        version = f"v0.0.1-go{GO_RELEASE}.{sys.platform}-{arch}"
        url = f"{_proxy_url()}/golang.org/toolchain/@v/{version}.zip"
        with tempfile.TemporaryDirectory(dir=root.parent) as scratch:
            archive = Path(scratch) / "toolchain.zip"
            with (
                console.status(f"Fetching go{GO_RELEASE} from {url}…"),
                urllib.request.urlopen(url, timeout=600) as reply,
                archive.open("wb") as out,
            ):
                shutil.copyfileobj(reply, out)
            prefix = f"golang.org/toolchain@{version}/"
            staging = Path(scratch) / "go"
            with zipfile.ZipFile(archive) as zipped:
                for info in zipped.infolist():
                    if info.is_dir() or not info.filename.startswith(prefix):
                        continue
                    target = staging / info.filename.removeprefix(prefix)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zipped.open(info) as src, target.open("wb") as dst:
                        shutil.copyfileobj(src, dst)
            # Module zips keep no file modes: the commands are bin/* and pkg/tool/*/*.
            for command in [*staging.glob("bin/*"), *staging.glob("pkg/tool/*/*")]:
                command.chmod(0o755)
            staging.rename(root)
    console.print(f"fetched go{GO_RELEASE} -> {root}")
    return go


def _proxy_url() -> str:
    """The first HTTP proxy of ``$GOPROXY`` (Go's default when unset)."""
    for entry in re.split(r"[,|]", os.environ.get("GOPROXY") or "https://proxy.golang.org"):
        if entry.startswith(("http://", "https://")):
            return entry.rstrip("/")
    return "https://proxy.golang.org"


def go_env(go: str, name: str) -> str:
    done = subprocess.run([go, "env", name], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LocalStackError(f"`{go} env {name}` failed: {_tail(done.stderr)}; {_GO_HINT}")
    return done.stdout.strip()


def ensure_tool(tool: GoTool, console: Console | None = None) -> Path:
    """The path of ``tool``'s binary, built the first time (later calls return at once).

    A lock makes concurrent callers (parallel test runs) build it once. Raises
    :class:`LocalStackError` saying what to do when ``go`` or the module proxy is
    missing or the build fails."""
    if tool.is_built():
        return tool.binary
    with _locked(tool.home / ".lock"):
        if tool.is_built():  # another process finished first
            return tool.binary
        console = console or Console(stderr=True)
        _require_proxy(os.environ.get("GOPROXY") or None, tool)  # before fetching a toolchain
        go = go_binary(console)
        proxy = go_env(go, "GOPROXY")
        _require_proxy(proxy, tool)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="build-", dir=tool.home) as scratch:
            staging = Path(scratch) / "bin"
            staging.mkdir()
            flags = [f"-ldflags=-X {tool.version_var}={tool.release}"] if tool.version_var else []
            flags += [f"-tags={','.join(tool.tags)}"] if tool.tags else []
            if tool.source is not None:
                if not (tool.source / "go.mod").is_file():
                    raise LocalStackError(
                        f"{tool.source}/go.mod is missing: {tool.name} is built from this "
                        "repository's deploy/ folder (a source checkout, not a wheel)"
                    )
                cmd = [go, "build", "-v", "-mod=readonly", "-o", str(staging / tool.name), "."]
                _run_build(cmd, tool, proxy, console, cwd=tool.source)
            elif tool.missing_assets:
                source = _module_copy(go, tool, Path(scratch) / "src", console)
                cmd = [
                    go,
                    "build",
                    "-v",
                    *flags,
                    "-o",
                    str(staging / tool.name),
                    f"./{tool.package}",
                ]
                _run_build(cmd, tool, proxy, console, cwd=source)
            else:
                cmd = [go, "install", "-v", *flags, tool.pinned]
                _run_build(cmd, tool, proxy, console, env={"GOBIN": str(staging)})
            tool.binary.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / tool.name, tool.binary)  # atomic: never half a binary
        console.print(
            f"built {tool.name} {tool.version} in {time.monotonic() - started:.0f} s "
            f"-> {tool.binary}"
        )
    return tool.binary


def _require_proxy(proxy: str | None, tool: GoTool) -> None:
    """Refuse a GOPROXY that fetches nothing (None: not set, Go's default applies)."""
    if proxy is not None and proxy in ("", "off"):
        raise LocalStackError(
            f"GOPROXY is {proxy or 'empty'}, so {tool.pinned} cannot be fetched; set it "
            "(e.g. `go env -w GOPROXY=https://proxy.golang.org,direct`, or your "
            f"company's proxy), or build it elsewhere and copy the binary to {tool.binary}"
        )


def ensure_tools(tools: list[GoTool] | None = None, console: Console | None = None) -> list[Path]:
    """Build every tool not built yet (all of :data:`TOOLS` by default)."""
    return [ensure_tool(t, console) for t in (tools or list(TOOLS.values()))]


def _module_copy(go: str, tool: GoTool, dest: Path, console: Console) -> Path:
    """A writable copy of the module's source with its missing assets filled in."""
    with console.status(f"Fetching {tool.module}@{tool.version} from the Go module proxy…"):
        done = subprocess.run(
            [go, "mod", "download", "-json", f"{tool.module}@{tool.version}"],
            capture_output=True,
            text=True,
            check=False,
            timeout=_BUILD_TIMEOUT_S,
        )
    if done.returncode != 0:
        raise _build_error(tool, go_env(go, "GOPROXY"), done.stdout + done.stderr)
    shutil.copytree(Path(orjson.loads(done.stdout)["Dir"]), dest)
    for folder, _, files in os.walk(dest):  # the module cache is read-only
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(Path(folder) / name, 0o644)
    for asset in tool.missing_assets:
        path = dest / asset
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_PLACEHOLDER.format(name=tool.name, version=tool.version))
    return dest


def _run_build(
    cmd: list[str],
    tool: GoTool,
    proxy: str,
    console: Console,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Run a ``go`` build, showing the package being compiled (``-v`` prints each one)."""
    title = f"Building {tool.name} {tool.version} with go (first time only; minutes)"
    output: deque[str] = deque(maxlen=200)
    compiled = 0
    with console.status(title + "…") as status:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + _BUILD_TIMEOUT_S
        for line in proc.stdout:
            line = line.rstrip()
            output.append(line)
            if not line.startswith("go: "):
                compiled += 1
            status.update(f"{title}: {compiled} packages… {line[-60:]}")
            if time.monotonic() > deadline:
                proc.kill()
                break
        code = proc.wait()
    if code != 0:
        raise _build_error(tool, proxy, "\n".join(output), " ".join(cmd))


def _build_error(tool: GoTool, proxy: str, output: str, cmd: str = "") -> LocalStackError:
    unreachable = any(
        s in output
        for s in ("dial tcp", "no such host", "connection refused", "i/o timeout", "proxyconnect")
    )
    if unreachable:
        what = (
            f"the Go module proxy ({proxy}) could not be reached for {tool.pinned}; check the "
            "network or set GOPROXY to a reachable proxy (`go env -w GOPROXY=...`)"
        )
    else:
        what = f"building {tool.pinned} failed"
    by_hand = f"; to retry by hand: {cmd}" if cmd else ""
    return LocalStackError(
        f"{what}:\n{_tail(output)}\nFix that and run `tokenshare stack tools` again, or copy a "
        f"{tool.name} {tool.version} binary to {tool.binary}{by_hand}"
    )
