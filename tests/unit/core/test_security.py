"""Kafka security settings alone: the options each client library gets, refusals of
inconsistent settings, and no secret in a repr (against a SCRAM broker:
tests/integration/core/test_security.py)."""

from __future__ import annotations

import secrets
import ssl
from pathlib import Path

import pytest
from pydantic import SecretStr

from tokenshare.localstack import SecureListener
from tokenshare.settings import KafkaSecurity, Settings

USER = "tokenshare-client"

pytestmark = pytest.mark.usefixtures("no_tokenshare_env")


def test_plaintext_options_are_unchanged(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert settings.kafka_client_options() == {"security_protocol": "PLAINTEXT"}
    assert settings.kafka_client_options("aiokafka") == {"security_protocol": "PLAINTEXT"}
    assert settings.kafka_client_options("faust") == {}


def test_options_per_client_library(other_ca: Path, tmp_path: Path) -> None:
    secret = secrets.token_urlsafe(12)
    security = KafkaSecurity(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=USER,
        sasl_password=SecretStr(secret),
        ssl_cafile=other_ca,
    )
    settings = Settings(home=tmp_path, kafka=security)
    login = {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": USER,
        "sasl_plain_password": secret,
    }

    kp = settings.kafka_client_options("kafka-python")
    assert kp == {**login, "ssl_cafile": str(other_ca), "ssl_check_hostname": True}
    assert secret not in repr(kp)  # what kafka-python's admin client logs

    aio = settings.kafka_client_options("aiokafka")
    context = aio.pop("ssl_context")
    assert aio == login
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname

    credentials = settings.kafka_client_options("faust")["broker_credentials"]
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.password == secret and secret not in repr(credentials)

    for text in (repr(settings), str(settings), settings.model_dump_json(), repr(security)):
        assert secret not in text


def test_inconsistent_security_is_refused(tmp_path: Path) -> None:
    missing = Settings(
        home=tmp_path,
        kafka=KafkaSecurity(
            security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username=USER
        ),
    )
    with pytest.raises(ValueError, match="TOKENSHARE_KAFKA_SASL_PASSWORD"):
        missing.kafka_client_options()
    secret = secrets.token_urlsafe(12)
    unused = Settings(
        home=tmp_path,
        kafka=KafkaSecurity(sasl_username=USER, sasl_password=SecretStr(secret)),
    )
    with pytest.raises(ValueError, match="SECURITY_PROTOCOL is PLAINTEXT") as raised:
        unused.kafka_client_options("aiokafka")
    assert secret not in str(raised.value)
    no_file = Settings(
        home=tmp_path,
        kafka=KafkaSecurity(security_protocol="SSL", ssl_cafile=tmp_path / "missing.pem"),
    )
    with pytest.raises(ValueError, match="no file at"):
        no_file.kafka_client_options()


def test_secure_listener_hides_its_password() -> None:
    secret = secrets.token_urlsafe(12)
    listener = SecureListener(port=1, username=USER, password=secret)
    assert isinstance(listener.password, SecretStr)
    assert listener.secret() == secret
    assert secret not in repr(listener) and secret not in str(listener)
    with pytest.raises(ValueError, match="username"):
        SecureListener(port=1, username="a b", password=secret)
