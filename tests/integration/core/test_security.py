"""SASL/SCRAM over TLS: the settings producers and workers use, against a real broker with a
SCRAM listener. The right login gets events through; a wrong password, a plaintext client,
a TLS client without a login and an untrusted CA are all turned away, quickly; no secret
shows up in a repr, a log or the broker's files (the settings alone:
tests/unit/core/test_security.py)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from tests.factories import event, unique
from tokenshare.localstack import LocalKafka, SecureListener
from tokenshare.processes import free_ports
from tokenshare.producers.kafka_producer import EventProducer
from tokenshare.settings import KafkaSecurity, Settings
from tokenshare.streams.topics import ensure_topics

USER = "tokenshare-client"
#: How long a rejected kafka-python client may try before it gives up (it retries).
BOOTSTRAP_MS = 4000

pytestmark = pytest.mark.usefixtures("no_tokenshare_env")


@pytest.fixture(scope="module")
def password() -> str:
    """Made per run: no password is written in the repository."""
    return secrets.token_urlsafe(18)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, password: str) -> Iterator[LocalKafka]:
    port, controller_port, secure_port = free_ports(3)
    kafka = LocalKafka(
        tmp_path_factory.mktemp("secure-kafka"),
        port=port,
        controller_port=controller_port,
        secure=SecureListener(port=secure_port, username=USER, password=password),
    )
    try:
        kafka.start(timeout=180)
        yield kafka
    finally:
        kafka.stop()


def secured_settings(kafka: LocalKafka, home: Path, **security: Any) -> Settings:
    fields: dict[str, Any] = {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": USER,
        "ssl_cafile": kafka.ca_file,
        **security,
    }
    return Settings(
        home=home,
        kafka_bootstrap=kafka.secure_bootstrap,
        topic_prefix=unique(),
        partitions=2,
        worker_id=unique("w"),
        kafka=KafkaSecurity(**fields),
    )


def kafka_python_rejected(settings: Settings, caplog: pytest.LogCaptureFixture) -> str:
    """Start an EventProducer; it must fail within the bootstrap bound. Returns the logs."""
    from kafka.errors import KafkaTimeoutError

    caplog.clear()
    started = time.monotonic()
    with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
        EventProducer(settings, bootstrap_timeout_ms=BOOTSTRAP_MS)
    assert time.monotonic() - started < BOOTSTRAP_MS / 1000 + 10
    return caplog.text


def aiokafka_rejected(settings: Settings, caplog: pytest.LogCaptureFixture) -> str:
    """Start an aiokafka consumer; it must fail (not hang). Returns the logs."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import KafkaConnectionError

    async def start() -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            request_timeout_ms=5000,
            **settings.kafka_client_options("aiokafka"),
        )
        try:
            await asyncio.wait_for(consumer.start(), timeout=20)
        finally:
            await consumer.stop()

    caplog.clear()
    with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
        asyncio.run(start())
    return caplog.text


def broker_logged(kafka: LocalKafka, since: int, text: str, timeout: float = 10) -> bool:
    """Whether the broker's log has ``text`` past byte ``since`` (it may take a moment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text.encode() in kafka.log_file.read_bytes()[since:]:
            return True
        time.sleep(0.1)
    return False


async def consume(settings: Settings, messages: int, timeout: float = 30) -> list[Any]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        settings.events_topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=unique("g"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **settings.kafka_client_options("aiokafka"),
    )
    values: list[Any] = []
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        while len(values) < messages and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            values.extend(orjson.loads(r.value) for rs in batches.values() for r in rs)
    finally:
        await consumer.stop()
    return values


def test_events_flow_over_sasl_ssl_configured_from_env(
    secured: LocalKafka,
    password: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every library's debug output: none may hold the secret
    env = {
        "TOKENSHARE_KAFKA_BOOTSTRAP": secured.secure_bootstrap,
        "TOKENSHARE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "TOKENSHARE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "TOKENSHARE_KAFKA_SASL_USERNAME": USER,
        "TOKENSHARE_KAFKA_SASL_PASSWORD": password,
        "TOKENSHARE_KAFKA_SSL_CAFILE": str(secured.ca_file),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings(home=tmp_path, topic_prefix=unique(), partitions=2, worker_id=unique("w"))
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == password

    assert settings.events_topic in ensure_topics(settings)  # kafka-python admin client
    with EventProducer(settings) as producer:  # kafka-python producer
        producer.send_batch([event(i, seed=6) for i in range(40)])
        producer.send(event(40, seed=6))
    assert (producer.stats.acked, producer.stats.failed) == (41, 0), producer.stats.errors

    values = asyncio.run(consume(settings, messages=2))  # aiokafka consumer, as the worker
    ids = {
        v["event_id"] for batch in values for v in (batch if isinstance(batch, list) else [batch])
    }
    assert ids == {f"ev-6-{i}" for i in range(41)}

    assert "'**********'" in caplog.text  # kafka-python's admin logged its config, masked
    for text in (caplog.text, repr(settings), str(settings), settings.model_dump_json()):
        assert password not in text


def test_wrong_password_is_rejected(
    secured: LocalKafka, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    wrong = secured_settings(secured, tmp_path, sasl_password=SecretStr("not-" + USER))
    refused = "invalid credentials with SASL mechanism SCRAM-SHA-512"
    mark = secured.log_file.stat().st_size
    # kafka-python 3.0.12 retries until its bootstrap timeout, and now and then reports the
    # broker's refusal as a plain disconnect (the TLS close overtakes the error response):
    # the broker's log is the witness.
    kafka_python_rejected(wrong, caplog)
    assert broker_logged(secured, mark, refused)
    mark = secured.log_file.stat().st_size
    assert "SaslAuthenticationFailed" in aiokafka_rejected(wrong, caplog)
    assert broker_logged(secured, mark, refused)


def test_unknown_user_is_rejected(
    secured: LocalKafka, password: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    stranger = secured_settings(
        secured, tmp_path, sasl_username="mallory", sasl_password=SecretStr(password)
    )
    assert "SaslAuthenticationFailed" in aiokafka_rejected(stranger, caplog)


def test_plaintext_and_unauthenticated_clients_are_rejected(
    secured: LocalKafka, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    plaintext = Settings(home=tmp_path, kafka_bootstrap=secured.secure_bootstrap)
    assert plaintext.kafka.security_protocol == "PLAINTEXT"
    mark = secured.log_file.stat().st_size
    kafka_python_rejected(plaintext, caplog)
    aiokafka_rejected(plaintext, caplog)
    assert broker_logged(secured, mark, "SSL handshake failed")

    tls_only = secured_settings(  # TLS is fine, but there is no login: the broker waits for SASL
        secured, tmp_path, security_protocol="SSL", sasl_mechanism=None, sasl_username=None
    )
    aiokafka_rejected(tls_only, caplog)


def test_untrusted_ca_is_rejected(
    secured: LocalKafka,
    password: str,
    other_ca: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    untrusted = secured_settings(
        secured, tmp_path, sasl_password=SecretStr(password), ssl_cafile=other_ca
    )
    assert "CERTIFICATE_VERIFY_FAILED" in kafka_python_rejected(untrusted, caplog)
    assert "CERTIFICATE_VERIFY_FAILED" in aiokafka_rejected(untrusted, caplog)


def test_no_secret_in_the_broker_files(secured: LocalKafka, password: str) -> None:
    """The SCRAM password reaches the broker as a salted hash through the Admin API: no file
    of its home (config, logs, metadata log) holds it; the files with the keystore
    password are the owner's alone."""
    assert secured.secure is not None
    assert password not in repr(secured.secure)
    needle = password.encode()
    for path in secured.dir.rglob("*"):
        if path.is_file():
            assert needle not in path.read_bytes(), path
    for path in (secured.config_file, secured.tls_dir / "keystore.password"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert not (secured.tls_dir / "ca.p12").exists()  # the CA's key is gone


def test_restart_takes_a_new_password(secured: LocalKafka, tmp_path: Path) -> None:
    """Certificates are kept per home; the SCRAM user is rewritten at every start."""
    assert secured.secure is not None
    ca_before = secured.ca_file.read_bytes()
    new = secrets.token_urlsafe(18)
    again = LocalKafka(
        secured.home,
        port=secured.port,
        controller_port=secured.controller_port,
        secure=SecureListener(port=secured.secure.port, username=USER, password=new),
    )
    again.start(timeout=60)  # the broker runs already: only the credential changes
    assert secured.ca_file.read_bytes() == ca_before
    assert again.is_secure_ready()
    assert not secured.is_secure_ready()  # the old password no longer logs in
