"""A real single-node Apache Kafka broker (KRaft) for local runs and tests.

The broker's jars come from Maven Central (``org.apache.kafka:kafka_2.13``) through
``mvn dependency:copy-dependencies`` into a cache outside the repository; the broker
runs as a detached ``java`` process whose data, config, log and pid file live under
``<home>/kafka``. With ``secure=SecureListener(...)`` the broker also listens for
SASL/SCRAM over TLS (see :mod:`tokenshare.localstack.tls`).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr
from rich.console import Console

from tokenshare.localstack import tls

#: Pinned broker version (Maven artifact ``org.apache.kafka:kafka_2.13``).
KAFKA_VERSION = "4.1.1"

#: Main classes inside ``kafka_2.13-<version>.jar``.
BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL_MAIN = "kafka.tools.StorageTool"

JVM_FLAGS = ("-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true")
#: A short-lived JVM for the one-off storage format: start fast, use little.
TOOL_JVM_FLAGS = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")

_INSTALL_HINT = "install a Java 17 JDK and Maven: apt-get install -y openjdk-17-jre-headless maven"
_MARKER = ".complete"
_PACKAGE = "tokenshare.localstack"  # holds pom.xml and log4j2.xml


class LocalStackError(RuntimeError):
    """The local stack could not do what was asked; the message says what to do next."""


def cache_root() -> Path:
    """``${TOKENSHARE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/tokenshare}``: every download and
    build of the local stack lives under it, outside the repository (CI caches it)."""
    root = os.environ.get("TOKENSHARE_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "tokenshare"


def cache_dir(version: str = KAFKA_VERSION) -> Path:
    """``<cache_root()>/kafka-<version>``."""
    return cache_root() / f"kafka-{version}"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise LocalStackError(f"`{name}` was not found on PATH; {_INSTALL_HINT}")
    return path


def _tail(text: str, lines: int = 30) -> str:
    """The last ``lines`` lines of ``text``, without terminal colour codes (mvn emits some)."""
    return "\n".join(re.sub(r"\x1b\[[0-9;]*m", "", text).strip().splitlines()[-lines:])


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_jars(version: str = KAFKA_VERSION, console: Console | None = None) -> Path:
    """Fetch the broker and its runtime dependencies once; return the ``libs`` folder.

    Idempotent: a marker file records a complete download and later calls return at once.
    """
    template = resources.files(_PACKAGE).joinpath("pom.xml").read_text(encoding="utf-8")
    pom = template.replace("@KAFKA_VERSION@", version)
    return maven_dependencies(cache_dir(version), pom, f"Apache Kafka {version}", console)


def maven_dependencies(root: Path, pom: str, what: str, console: Console | None = None) -> Path:
    """The runtime dependencies of `pom` copied from Maven Central into ``root/libs``
    once (``mvn dependency:copy-dependencies``); later calls return at once."""
    libs = root / "libs"
    if (root / _MARKER).exists() and libs.is_dir():
        return libs
    with _locked(root / ".lock"):
        if (root / _MARKER).exists() and libs.is_dir():  # another process finished first
            return libs
        mvn = _tool("mvn")
        (root / "pom.xml").write_text(pom)
        staging = root / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [
            mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(root / "pom.xml"),
            "dependency:copy-dependencies", "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]  # fmt: skip
        status = (console or Console(stderr=True)).status(
            f"Fetching {what} jars from Maven Central…"
        )
        try:
            with status:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        except subprocess.TimeoutExpired as exc:
            raise LocalStackError(
                f"mvn did not finish within {exc.timeout:.0f} s while fetching {what}; "
                f"check access to Maven Central, then run again (or by hand: {' '.join(cmd)})"
            ) from exc
        if done.returncode != 0:
            raise LocalStackError(
                f"mvn could not fetch {what} (exit {done.returncode}):\n"
                f"{_tail(done.stdout + done.stderr)}\n"
                "Check that Maven Central is reachable (proxy settings go in ~/.m2/settings.xml) "
                f"and that the version exists, then run again; "
                f"to see everything: {' '.join(c for c in cmd if c != '-q')}"
            )
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        (root / _MARKER).write_text("\n".join(sorted(p.name for p in libs.glob("*.jar"))) + "\n")
    return libs


def _port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _new_cluster_id() -> str:
    """A Kafka ``Uuid`` as text: 16 random bytes, URL-safe base64 without padding.

    Never one starting with '-' (1 in 64): the storage tool would read it as an
    option and fail to format ("expected one argument")."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


_SCRAM_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class SecureListener:
    """A ``SASL_SSL://127.0.0.1:<port>`` listener that lets in ``username`` (SCRAM) only.

    The password is held as a :class:`~pydantic.SecretStr` and left out of ``repr``."""

    port: int
    username: str
    password: SecretStr | str = field(repr=False)
    mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    #: PBKDF2 rounds the broker stores the password with (Kafka accepts 4096-16384).
    iterations: int = 8192

    def __post_init__(self) -> None:
        if isinstance(self.password, str):
            object.__setattr__(self, "password", SecretStr(self.password))
        if not _SCRAM_NAME.match(self.username):
            raise ValueError("username: 1-64 of letters, digits, '.', '_' and '-'")
        if not self.secret():
            raise ValueError("password must not be empty")
        if not 4096 <= self.iterations <= 16384:
            raise ValueError("iterations must be within 4096..16384 (Kafka's limits)")

    def secret(self) -> str:
        """The password itself: hand it to a client, never to a log."""
        pw = self.password
        return pw.get_secret_value() if isinstance(pw, SecretStr) else pw

    @property
    def listener(self) -> str:
        return f"SASL_SSL://127.0.0.1:{self.port}"


class LocalKafka:
    """One KRaft broker+controller on loopback, with its files under ``home/"kafka"``.

    ``secure`` adds a SASL_SSL listener (SCRAM over TLS) on its own port; the PLAINTEXT
    listener on ``port`` stays, for the broker itself and for :meth:`is_ready`."""

    def __init__(
        self,
        home: Path,
        port: int = 19092,
        controller_port: int | None = None,
        version: str = KAFKA_VERSION,
        secure: SecureListener | None = None,
        advertised_port: int | None = None,
    ) -> None:
        self.home = Path(home).absolute()
        self.port = port
        #: The port clients are told to use; another one when a proxy sits in front
        #: (the reliability suite's network faults).
        self.advertised_port = port if advertised_port is None else advertised_port
        self.controller_port = port + 1 if controller_port is None else controller_port
        self.version = version
        self.dir = self.home / "kafka"
        self.data_dir = self.dir / "data"
        self.config_file = self.dir / "server.properties"
        self.log_file = self.dir / "broker.log"  # log4j2 output (rolled)
        self.out_file = self.dir / "broker.out"  # the JVM's own stdout/stderr
        self.pid_file = self.dir / "kafka.pid"
        self.secure = secure
        self.tls_dir = self.dir / "tls"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def secure_bootstrap(self) -> str:
        """``127.0.0.1:<port>`` of the SASL_SSL listener; only with ``secure``."""
        if self.secure is None:
            raise LocalStackError("this LocalKafka has no secured listener (pass secure=...)")
        return f"127.0.0.1:{self.secure.port}"

    @property
    def ca_file(self) -> Path:
        """The PEM certificate of the CA that signed the broker's certificate (secured mode);
        clients trust it through ``TOKENSHARE_KAFKA_SSL_CAFILE``."""
        return self.tls_dir / "ca.pem"

    # --- state -------------------------------------------------------------------
    def pid(self) -> int | None:
        """The broker's pid if it is alive; a stale pid file is removed."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if self._alive(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def _alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists():  # guard against a recycled pid: it must be *this* broker
            args = cmdline.read_bytes().split(b"\0")
            return BROKER_MAIN.encode() in args and str(self.config_file).encode() in args
        return True

    def is_running(self) -> bool:
        """True while this home's broker process is alive (ready or still starting)."""
        return self.pid() is not None

    def is_ready(self, timeout: float = 3.0) -> bool:
        """True when a Kafka admin client can list topics on :attr:`bootstrap`."""
        if not _port_open(self.port):
            return False
        from kafka import KafkaAdminClient  # slow import; only when needed

        ms = int(timeout * 1000)
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap,
                client_id="tokenshare-stack",
                request_timeout_ms=ms,
                bootstrap_timeout_ms=ms,
            )
        except Exception:
            return False
        try:
            admin.list_topics()
            return True
        except Exception:
            return False
        finally:
            admin.close()

    def secure_client_options(self) -> dict[str, Any]:
        """kafka-python options that log in on the secured listener as its user."""
        if self.secure is None:
            raise LocalStackError("this LocalKafka has no secured listener (pass secure=...)")
        return {
            "bootstrap_servers": self.secure_bootstrap,
            "security_protocol": "SASL_SSL",
            "ssl_cafile": str(self.ca_file),
            "sasl_mechanism": self.secure.mechanism,
            "sasl_plain_username": self.secure.username,
            "sasl_plain_password": self.secure.secret(),
        }

    def is_secure_ready(self, timeout: float = 3.0) -> bool:
        """True when the secured listener takes the user's login and answers a metadata call."""
        if self.secure is None or not _port_open(self.secure.port):
            return False
        from kafka import KafkaAdminClient

        ms = int(timeout * 1000)
        try:
            admin = KafkaAdminClient(
                client_id="tokenshare-stack",
                request_timeout_ms=ms,
                bootstrap_timeout_ms=ms,
                **self.secure_client_options(),
            )
        except Exception:
            return False
        try:
            admin.list_topics()
            return True
        except Exception:
            return False
        finally:
            admin.close()

    def log_tail(self, lines: int = 30) -> str:
        parts = []
        for path in (self.out_file, self.log_file):
            with contextlib.suppress(FileNotFoundError):
                text = path.read_text(errors="replace").strip()
                if text:
                    parts.append(f"--- {path}\n{_tail(text, lines)}")
        return "\n".join(parts) or "(no broker log yet)"

    # --- lifecycle ---------------------------------------------------------------
    def start(self, timeout: float = 90.0, console: Console | None = None) -> None:
        """Start the broker (fetching jars and formatting storage the first time); wait until
        it answers. Does nothing when this home's broker already runs."""
        console = console or Console(stderr=True)
        java = _tool("java")
        libs = ensure_jars(self.version, console)
        with _locked(self.dir / ".lock"):
            if self.pid() is None:
                ports = [self.port, self.controller_port]
                if self.secure is not None:
                    ports.append(self.secure.port)
                for port in ports:
                    if _port_open(port):
                        raise LocalStackError(
                            f"port {port} on 127.0.0.1 is taken by another process; stop it "
                            "(another stack: `tokenshare stack down --home <its home>`) "
                            "or choose another --port"
                        )
                if self.secure is not None:
                    with console.status("Making the broker's TLS certificate…"):
                        self._ensure_tls()
                self._write_config()
                with console.status("Formatting KRaft storage…"):
                    self._format(java, libs)
                self._launch(java, libs)
            elif self.secure is not None and self.secure.listener not in self._listeners():
                raise LocalStackError(
                    f"the broker of {self.home} already runs without {self.secure.listener}; "
                    f"stop it (`tokenshare stack down --home {self.home}`) and start again"
                )
            deadline = time.monotonic() + timeout
            with console.status(f"Starting Kafka {self.version} on {self.bootstrap}…"):
                self._wait_ready(timeout)
            if self.secure is not None:
                with console.status(f"Securing {self.secure.listener} ({self.secure.mechanism})…"):
                    self._upsert_scram_user()
                    self._wait_secure_ready(max(deadline - time.monotonic(), 10.0))

    def _ensure_tls(self) -> tls.BrokerTLS:
        try:
            return tls.ensure_broker_tls(self.tls_dir)
        except tls.TLSError as exc:
            raise LocalStackError(
                f"could not make the broker's TLS certificate in {self.tls_dir}: {exc}"
            ) from exc

    def _listeners(self) -> str:
        """The ``listeners`` line of the written config ('' without one)."""
        with contextlib.suppress(FileNotFoundError):
            for line in self.config_file.read_text().splitlines():
                if line.startswith("listeners="):
                    return line.partition("=")[2]
        return ""

    def _upsert_scram_user(self) -> None:
        """Create or update the SCRAM user through the Admin API on the PLAINTEXT listener:
        the password goes over loopback as a salted hash, never onto a command line."""
        from kafka import KafkaAdminClient
        from kafka.admin import UserScramCredentialUpsertion

        sec = self.secure
        assert sec is not None
        admin = KafkaAdminClient(
            bootstrap_servers=self.bootstrap,
            client_id="tokenshare-stack",
            request_timeout_ms=30_000,
        )
        try:
            upsert = UserScramCredentialUpsertion(
                sec.username, sec.mechanism, sec.secret(), iterations=sec.iterations
            )
            errors = admin.alter_user_scram_credentials([upsert])
        finally:
            admin.close()
        if errors.get(sec.username):
            raise LocalStackError(
                f"the broker refused the SCRAM credential for {sec.username!r}: "
                f"{errors[sec.username]}"
            )

    def _wait_secure_ready(self, timeout: float) -> None:
        assert self.secure is not None
        deadline = time.monotonic() + timeout
        while not self.is_secure_ready(timeout=3.0):
            if time.monotonic() > deadline:
                raise LocalStackError(
                    f"the broker runs, but {self.secure.listener} did not accept "
                    f"{self.secure.username!r} within {timeout:.0f} s; last log lines:\n"
                    f"{self.log_tail()}\n"
                    f"If the certificates in {self.tls_dir} are damaged, delete that folder "
                    "and start again (stop the broker first)."
                )
            time.sleep(0.25)

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        max_message = 10 * 1024 * 1024  # 8 MiB payloads plus batch/record overhead
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.advertised_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir.resolve()),
            "num.partitions": "8",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "8",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "message.max.bytes": str(max_message),
            "replica.fetch.max.bytes": str(max_message),
        }
        if self.secure is not None:
            props.update(self._secure_props())
        text = "# written by tokenshare.localstack; edits are lost\n" + "".join(
            f"{k}={v}\n" for k, v in props.items()
        )
        if self.secure is not None:  # holds the keystore password: owner only
            tls.write_private(self.config_file, text)
        else:
            self.config_file.write_text(text)
        log4j = resources.files(_PACKAGE).joinpath("log4j2.xml").read_text(encoding="utf-8")
        (self.dir / "log4j2.xml").write_text(log4j)

    def _secure_props(self) -> dict[str, str]:
        """The SASL_SSL listener: TLS with the home's keystore, SCRAM logins only.
        Inter-broker and controller traffic stay on the loopback PLAINTEXT listeners."""
        sec = self.secure
        assert sec is not None
        store = self._ensure_tls()
        prefix = "listener.name.sasl_ssl."
        mech = sec.mechanism.lower()
        return {
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port},"
                f"{sec.listener}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port},{sec.listener}",
            "listener.security.protocol.map": (
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
            ),
            f"{prefix}sasl.enabled.mechanisms": sec.mechanism,
            f"{prefix}{mech}.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            f"{prefix}ssl.keystore.type": "PKCS12",
            f"{prefix}ssl.keystore.location": str(store.keystore.resolve()),
            f"{prefix}ssl.keystore.password": store.keystore_password(),
            f"{prefix}ssl.client.auth": "none",
            f"{prefix}ssl.enabled.protocols": "TLSv1.3,TLSv1.2",
        }

    def _classpath(self, libs: Path) -> str:
        return f"{libs.resolve()}/*"

    def _format(self, java: str, libs: Path) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        cmd = [
            java, *TOOL_JVM_FLAGS, "-cp", self._classpath(libs), STORAGE_TOOL_MAIN,
            "format", "-t", _new_cluster_id(), "-c", str(self.config_file), "--ignore-formatted",
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise LocalStackError(
                f"formatting Kafka storage in {self.data_dir} failed:\n"
                f"{_tail(done.stdout + done.stderr)}\n"
                "If the data is not needed, run `tokenshare stack wipe` and start again."
            )

    def _launch(self, java: str, libs: Path) -> None:
        cmd = [
            java, *JVM_FLAGS,
            f"-Dkafka.logs.dir={self.dir.resolve()}",
            f"-Dlog4j2.configurationFile={(self.dir / 'log4j2.xml').resolve()}",
            "-cp", self._classpath(libs), BROKER_MAIN, str(self.config_file),
        ]  # fmt: skip
        with self.out_file.open("ab") as out:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.dir,
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.pid() is None:
                raise LocalStackError(
                    f"the Kafka broker exited while starting; last log lines:\n{self.log_tail()}\n"
                    f"Fix the cause above (full log: {self.log_file}) and run again; if the data "
                    f"is disposable, `tokenshare stack wipe --home {self.home} --yes` starts anew."
                )
            if self.is_ready(timeout=2.0):
                return
            if time.monotonic() > deadline:
                raise LocalStackError(
                    f"the Kafka broker did not answer on {self.bootstrap} within {timeout:.0f} s; "
                    f"last log lines:\n{self.log_tail()}\n"
                    "It is still running: look at the log, then `tokenshare stack down` "
                    "and try again (a slow machine may need a longer timeout)."
                )
            time.sleep(0.25)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the broker, SIGKILL it after ``timeout`` s; fine if it is not running."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self._alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if self._alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while self._alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
        self._proc = None
        self.pid_file.unlink(missing_ok=True)

    def wipe(self) -> None:
        """Stop the broker and delete everything under ``home/"kafka"``."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
