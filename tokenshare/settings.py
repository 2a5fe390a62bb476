"""One settings model for every tokenshare process.

Values come from (highest first): explicit keyword arguments, ``TOKENSHARE_*``
environment variables, the TOML file named by ``TOKENSHARE_CONFIG`` and the
defaults below, which run everything locally.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

#: Where the local stack keeps everything it writes (ignored by git).
DEFAULT_HOME = Path(".tokenshare")


#: The Kafka client library a set of options is for (they spell TLS differently).
KafkaClient = Literal["kafka-python", "aiokafka", "faust"]


class _Hidden(str):
    """A secret handed to a client library: the value itself, but ``'**********'`` in
    ``repr``, so a library that logs its configuration dict (kafka-python's admin client
    does, at DEBUG) does not log the secret."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'**********'"


class KafkaSecurity(BaseSettings):
    """Client-side security; PLAINTEXT on the local broker.

    SASL/SCRAM over TLS (``TOKENSHARE_KAFKA_`` + the upper-case field name)::

        TOKENSHARE_KAFKA_SECURITY_PROTOCOL=SASL_SSL
        TOKENSHARE_KAFKA_SASL_MECHANISM=SCRAM-SHA-512
        TOKENSHARE_KAFKA_SASL_USERNAME=...
        TOKENSHARE_KAFKA_SASL_PASSWORD=...   # secret: never in the repo
        TOKENSHARE_KAFKA_SSL_CAFILE=/path/ca.pem   # unset: the system's trusted CAs
    """

    model_config = SettingsConfigDict(
        env_prefix="TOKENSHARE_KAFKA_", extra="ignore", hide_input_in_errors=True
    )

    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    #: PEM file of the CA(s) that signed the brokers' certificates; unset: system CAs.
    ssl_cafile: Path | None = None
    #: Client certificate (PEM) and its key, for brokers that ask for one (mutual TLS).
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = None
    #: Check that the broker's certificate names the host connected to.
    ssl_check_hostname: bool = True

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    def problems(self) -> list[str]:
        """What makes this configuration unusable (empty when it is fine)."""
        found = []
        if self.uses_sasl:
            for name in ("sasl_mechanism", "sasl_username", "sasl_password"):
                if not getattr(self, name):
                    found.append(f"{self.security_protocol} needs TOKENSHARE_KAFKA_{name.upper()}")
        elif self.sasl_mechanism or self.sasl_username or self.sasl_password:
            found.append(
                f"SASL settings are given but TOKENSHARE_KAFKA_SECURITY_PROTOCOL is "
                f"{self.security_protocol}: use SASL_SSL (or SASL_PLAINTEXT) or drop them"
            )
        if self.ssl_keyfile and not self.ssl_certfile:
            found.append("TOKENSHARE_KAFKA_SSL_KEYFILE needs TOKENSHARE_KAFKA_SSL_CERTFILE")
        if not self.uses_tls and (self.ssl_cafile or self.ssl_certfile):
            found.append(
                f"TLS files are given but TOKENSHARE_KAFKA_SECURITY_PROTOCOL is "
                f"{self.security_protocol}: use SSL or SASL_SSL, or drop them"
            )
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                found.append(f"TOKENSHARE_KAFKA_{name.upper()}: no file at {path}")
        return found

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context: verifies the broker against ``ssl_cafile`` (or the
        system's CAs), TLS 1.2 at least, with the client certificate if one is set."""
        ctx = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(self.ssl_cafile) if self.ssl_cafile else None
        )
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = self.ssl_check_hostname
        if self.ssl_certfile:
            ctx.load_cert_chain(
                str(self.ssl_certfile),
                str(self.ssl_keyfile) if self.ssl_keyfile else None,
                _secret(self.ssl_key_password),
            )
        return ctx


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else _Hidden(value.get_secret_value())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOKENSHARE_", extra="ignore")

    home: Path = Field(default=DEFAULT_HOME, description="folder for local data, logs, pid files")
    #: Service logs: one JSON object per line, or plain text for a terminal.
    log_format: Literal["json", "text"] = "json"

    # --- Kafka ---------------------------------------------------------------
    kafka_bootstrap: str = "127.0.0.1:19092"
    topic_prefix: str = Field(default="tokenshare", pattern=r"^[A-Za-z0-9._-]{1,100}$")
    partitions: int = Field(default=8, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1, le=7)
    kafka: KafkaSecurity = Field(default_factory=KafkaSecurity)
    #: How long a starting worker or store waits for an unreachable broker (a broker
    #: restart or rolling upgrade) before it exits with an error.
    kafka_startup_wait_s: float = Field(default=120.0, ge=0)
    #: A group member that stops heartbeating loses its partitions after this long:
    #: short, so a crashed worker or store is replaced in seconds, not after the
    #: clients' defaults (45 s, 60 s for Faust). The broker refuses less than its
    #: group.min.session.timeout.ms (6 s by default).
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1_000)
    kafka_heartbeat_interval_ms: int = Field(default=2_000, ge=100)
    #: How long a client waits for any reply before it drops the connection and
    #: reconnects. A link that dies silently (a NAT or load balancer forgetting an
    #: idle flow: no reset, no data) is noticed only this way, so it bounds recovery;
    #: the clients' defaults are 30-40 s. JoinGroup requests wait longer, as they must.
    kafka_request_timeout_ms: int = Field(default=15_000, ge=1_000)
    #: Static group membership (KIP-345): a restarted worker or store rejoins under
    #: the same instance id and gets its partitions back without a rebalance. The id
    #: is this value plus the process's role, or, when empty, the host name plus the
    #: port the process listens on (two processes on one host cannot share it).
    #: Set ``kafka_static_membership=false`` for dynamic members, which leave their
    #: groups at once on a clean stop (static members are only dropped after the
    #: session timeout, so a scale-in takes that long).
    kafka_static_membership: bool = True
    kafka_instance_id: str = Field(default="", pattern=r"^[A-Za-z0-9._-]{0,200}$")

    # --- ClickHouse ------------------------------------------------------------
    #: ``chdb:///abs/path`` (embedded, one owning process) or ``http(s)://user:pw@host:port``.
    clickhouse_dsn: str = ""
    clickhouse_database: str = Field(default="tokenshare", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    #: A cluster of the servers' <remote_servers>: the schema becomes local tables on
    #: every node plus Distributed tables of the same names (sinks/cluster.py), and
    #: inserts wait until every shard stored its rows. Empty: a single node. Chosen
    #: before the first migration; existing tables are never converted.
    clickhouse_cluster: str = Field(default="", pattern=r"^([A-Za-z_][A-Za-z0-9_-]{0,99})?$")
    #: Cluster mode: local tables use Replicated* engines (Keeper, the {shard} and
    #: {replica} macros on every node). False: sharded only, plain engines.
    clickhouse_replicated: bool = True
    #: Cluster mode: DDL carries ON CLUSTER and runs once, through distributed DDL.
    #: False: DDL applies to the connected node only; run `tokenshare migrate` (or
    #: start a store) against every node in turn.
    clickhouse_on_cluster: bool = True

    # --- worker (streams/) -------------------------------------------------------
    worker_id: str = "tokenshare"
    worker_web_port: int = 6066
    #: Interface the worker's web endpoint listens on; 0.0.0.0 in containers.
    worker_web_bind: str = "127.0.0.1"
    ingest_max_records: int = Field(default=20_000, ge=1)
    ingest_max_wait_ms: int = Field(default=200, ge=1)
    max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)

    # --- share stage (streams/shares) ------------------------------------------
    #: Rules file (TOML); unset: the shipped defaults, streams/shares/rules.toml.
    rules_file: Path | None = None
    #: How often a worker sends the share-stage notices it owes itself (takeovers,
    #: idle rechecks); nothing is read unless one is due.
    shares_interval_s: float = Field(default=1.0, gt=0)
    #: Least time between two reads of the day sums (each read and evaluation covers
    #: the whole history): alerts come at most this much later, and heavy ingest
    #: does not pay for an evaluation per flush. 0: a read per flush.
    shares_min_interval_s: float = Field(default=5.0, ge=0)
    #: Optional: every alert is also POSTed here as JSON (with a `text` line).
    alert_webhook_url: str | None = None
    #: Optional: Prometheus Alertmanager's base URL (``http://alertmanager:9093``); every
    #: alert is posted to its v2 API, for routing, grouping and silences.
    alertmanager_url: str | None = None
    #: Optional: a Slack (or Slack-compatible) incoming-webhook URL for ``{"text": ...}``.
    slack_webhook_url: str | None = None

    # --- store (sinks/) --------------------------------------------------------
    #: Loopback port where the store serves read-only SQL while it runs.
    store_query_port: int = 18123
    #: Port of the store's Prometheus endpoint (/metrics); 0: any free port (logged).
    store_metrics_port: int = Field(default=18124, ge=0, le=65535)
    #: Interface of that endpoint; 0.0.0.0 in containers.
    store_metrics_bind: str = "127.0.0.1"
    #: A starting store waits this long for a short-lived holder of the embedded
    #: data path (a migration, an offline query) to finish, instead of exiting.
    store_lock_wait_s: float = Field(default=30.0, ge=0)
    #: Readers (`tokenshare sql`, analyst commands) open the embedded engine
    #: themselves instead of asking the store: only while no store runs.
    query_offline: bool = False
    store_max_rows: int = Field(default=200_000, ge=1)
    store_max_wait_ms: int = Field(default=500, ge=1)

    # --- ingest endpoint (producers/adapters) ----------------------------------
    #: Bearer token of `tokenshare ingest-http` (at least 16 characters). Unset: the
    #: endpoint refuses to start unless --insecure-no-auth is given (loopback only).
    ingest_token: SecretStr | None = None
    #: Largest request body accepted (after decompression); larger is answered 413.
    ingest_max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    #: How long a request waits for Kafka's acknowledgement before answering 503.
    ingest_ack_timeout_s: float = Field(default=30.0, gt=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("TOKENSHARE_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    # --- derived names: one place for every topic and path -----------------------
    @property
    def events_topic(self) -> str:
        return f"{self.topic_prefix}.events"

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic_prefix}.events.dlq"

    @property
    def rows_topic(self) -> str:
        """Validated, enriched rows on their way to the store (columnar batches)."""
        return f"{self.topic_prefix}.rows"

    @property
    def alerts_topic(self) -> str:
        """Alerts, and the ledger of what has fired (read back on restart)."""
        return f"{self.topic_prefix}.alerts"

    @property
    def shares_topic(self) -> str:
        return f"{self.topic_prefix}.shares"

    @property
    def changes_topic(self) -> str:
        """Notices from the store to the share stage: rows of these dimensions are stored."""
        return f"{self.topic_prefix}.rollup-changes"

    @property
    def ingest_group(self) -> str:
        return f"{self.topic_prefix}.ingest"

    @property
    def store_group(self) -> str:
        return f"{self.topic_prefix}.store"

    @property
    def dsn(self) -> str:
        if self.clickhouse_dsn:
            return self.clickhouse_dsn
        return f"chdb://{(self.home / 'clickhouse').resolve()}"

    @property
    def embedded(self) -> bool:
        return self.dsn.startswith("chdb://")

    def kafka_client_options(self, client: KafkaClient = "kafka-python") -> dict[str, Any]:
        """Security keyword arguments for a client of the ``client`` library.

        ``"kafka-python"`` (KafkaProducer/Consumer/AdminClient) takes the ``ssl_*`` files;
        ``"aiokafka"`` (AIOKafkaProducer/Consumer) takes an ``ssl_context``; ``"faust"``
        (``faust.App``) takes ``broker_credentials``. PLAINTEXT gives the same options as
        before for the first two, and none for Faust. Raises ValueError naming the
        settings when they do not fit together (e.g. SASL_SSL without a password)."""
        sec = self.kafka
        problems = sec.problems()
        if problems:
            raise ValueError("Kafka security settings: " + "; ".join(problems))
        if client == "faust":
            return _faust_options(sec)
        opts: dict[str, Any] = {"security_protocol": sec.security_protocol}
        if sec.uses_sasl:
            opts["sasl_mechanism"] = sec.sasl_mechanism
            opts["sasl_plain_username"] = sec.sasl_username
            opts["sasl_plain_password"] = _secret(sec.sasl_password)
        if sec.uses_tls:
            if client == "aiokafka":
                opts["ssl_context"] = sec.ssl_context()
            else:
                opts["ssl_check_hostname"] = sec.ssl_check_hostname
                for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                    path = getattr(sec, name)
                    if path is not None:
                        opts[name] = str(path)
                if sec.ssl_key_password is not None:
                    opts["ssl_password"] = _secret(sec.ssl_key_password)
        return opts


def _faust_options(sec: KafkaSecurity) -> dict[str, Any]:
    """``broker_credentials`` for ``faust.App`` (empty for PLAINTEXT)."""
    if sec.security_protocol == "PLAINTEXT":
        return {}
    from faust.auth import SASLCredentials, SSLCredentials  # heavy: only when needed

    context = sec.ssl_context() if sec.uses_tls else None
    if not sec.uses_sasl:
        return {"broker_credentials": SSLCredentials(context)}
    return {
        "broker_credentials": SASLCredentials(
            username=sec.sasl_username,
            password=_secret(sec.sasl_password),
            ssl_context=context,
            mechanism=sec.sasl_mechanism,
        )
    }
