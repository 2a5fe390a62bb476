"""tokenshare.kafka_clients: one place applies bootstrap, security and durability."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from kafka.errors import KafkaError
from pydantic import SecretStr

from tokenshare import kafka_clients
from tokenshare.settings import KafkaSecurity, Settings


def sasl_ssl() -> Settings:
    return Settings(
        kafka_bootstrap="broker.example:9093",
        kafka=KafkaSecurity(
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="tokenshare",
            sasl_password=SecretStr("s3cret-s3cret"),
        ),
    )


def test_plaintext_options_name_the_broker_and_the_protocol() -> None:
    opts = kafka_clients.options(
        Settings(kafka_bootstrap="h:1", kafka_request_timeout_ms=9_000), client_id="x"
    )
    assert opts == {
        "bootstrap_servers": "h:1",
        "request_timeout_ms": 9_000,  # a silently dropped link is noticed after this
        "security_protocol": "PLAINTEXT",
        "client_id": "x",
    }


def test_each_library_gets_tls_in_its_own_spelling() -> None:
    settings = sasl_ssl()
    kp = kafka_clients.options(settings)
    aio = kafka_clients.options(settings, "aiokafka")
    assert kp["sasl_plain_password"] == aio["sasl_plain_password"] == "s3cret-s3cret"
    assert "ssl_check_hostname" in kp and "ssl_context" not in kp
    assert isinstance(aio["ssl_context"], ssl.SSLContext)
    assert not any(k.startswith("ssl_") and k != "ssl_context" for k in aio)


def test_faust_gets_the_broker_url_credentials_and_acks_all() -> None:
    from faust.auth import SASLCredentials

    broker = kafka_clients.faust_broker(sasl_ssl())
    assert broker["broker"] == "kafka://broker.example:9093"
    assert broker["producer_acks"] == -1
    assert isinstance(broker["broker_credentials"], SASLCredentials)
    assert "broker_credentials" not in kafka_clients.faust_broker(Settings())


def test_unusable_security_settings_are_refused_before_any_client_exists() -> None:
    broken = Settings(kafka=KafkaSecurity(security_protocol="SASL_SSL"))
    with pytest.raises(ValueError, match="TOKENSHARE_KAFKA_SASL_PASSWORD"):
        kafka_clients.options(broken)


def test_aiokafka_producer_is_durable_and_accepts_the_tls_options() -> None:
    async def build() -> tuple[object, object]:
        producer = kafka_clients.aio_producer(sasl_ssl(), client_id="t", linger_ms=5)
        # Not started: no connection is made; the options were accepted as spelled.
        # Idempotence is what the transaction manager exists for.
        return producer.client._security_protocol, producer._txn_manager is not None

    assert asyncio.run(build()) == ("SASL_SSL", True)


def test_overrides_replace_the_durable_defaults() -> None:
    async def build() -> object:
        producer = kafka_clients.aio_producer(Settings(), acks=1, enable_idempotence=False)
        return producer._txn_manager is not None

    assert asyncio.run(build()) is False


def test_static_member_ids_are_stable_per_port_and_unique_per_role() -> None:
    a, b = Settings(worker_web_port=7001), Settings(worker_web_port=7002)
    assert kafka_clients.instance_id(a, "ingest") == kafka_clients.instance_id(
        Settings(worker_web_port=7001), "ingest"
    )  # a restart on the same port rejoins as the same member
    assert kafka_clients.instance_id(a, "ingest") != kafka_clients.instance_id(b, "ingest")
    assert kafka_clients.instance_id(a, "ingest") != kafka_clients.instance_id(a, "faust")
    named = Settings(kafka_instance_id="pod-3")
    assert kafka_clients.instance_id(named, "store") == "pod-3-store"
    assert kafka_clients.instance_id(Settings(kafka_static_membership=False), "store") is None


def test_every_group_client_gets_the_short_session_and_its_member_id() -> None:
    from kafka import KafkaConsumer

    s = Settings(kafka_session_timeout_ms=7_000, kafka_heartbeat_interval_ms=1_000)
    options = kafka_clients.membership(s, "store")
    # kafka-python accepts the options as spelled (no connection without bootstrap use).
    consumer = KafkaConsumer(
        bootstrap_servers="127.0.0.1:1", group_id="g", api_version=(3, 0), **options
    )
    try:
        assert consumer.config["session_timeout_ms"] == 7_000
        assert consumer.config["group_instance_id"] == kafka_clients.instance_id(s, "store")
    finally:
        consumer.close()
    faust = kafka_clients.faust_broker(s)
    assert faust["broker_session_timeout"] == 7.0
    assert faust["consumer_group_instance_id"] == kafka_clients.instance_id(s, "faust")


class _SlowMetadata:
    """A consumer whose metadata lists a topic only from its third look on."""

    def __init__(self) -> None:
        self.looks = 0

    def partitions_for_topic(self, topic: str) -> set[int]:
        self.looks += 1
        return {0, 1} if self.looks >= 3 else set()


def test_wait_for_partitions_returns_once_the_metadata_lists_them() -> None:
    consumer = _SlowMetadata()
    kafka_clients.wait_for_partitions(consumer, ["rows"], wait_s=30)  # type: ignore[arg-type]
    assert consumer.looks == 3


def test_wait_for_partitions_names_the_missing_topic_and_what_to_do() -> None:
    class Never:
        def partitions_for_topic(self, topic: str) -> set[int]:
            return set()

    with pytest.raises(KafkaError, match=r"no partition metadata for rows.*tokenshare topics"):
        kafka_clients.wait_for_partitions(Never(), ["rows"], wait_s=0)  # type: ignore[arg-type]
