"""Every Kafka client of tokenshare, built from Settings in one place.

One factory per client library and role, so that the broker address, the security
options (``Settings.kafka_client_options``: SASL/TLS, spelled differently by each
library) and the durability options are applied the same way everywhere:

- kafka-python (producers, the store, admin tasks): :func:`producer`,
  :func:`consumer`, :func:`admin`;
- aiokafka (the worker's batch loop, the share stage, the HTTP endpoint):
  :func:`aio_producer`, :func:`aio_consumer`, :func:`aio_admin`;
- Faust (the worker app): :func:`faust_broker`.

Producers are durable by default: ``acks=all`` and idempotence, so a broker failover
neither loses nor duplicates an acknowledged send. Keyword arguments override or add
client options (``client_id``, fetch sizes, timeouts ...).

The client libraries are imported on first use: they are slow to import, and a
process needs only the ones it uses.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from tokenshare.settings import Settings

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

#: Producer options no tokenshare producer goes without (both libraries spell them so).
DURABLE: dict[str, Any] = {"acks": "all", "enable_idempotence": True}


def options(settings: Settings, library: str = "kafka-python", **extra: Any) -> dict[str, Any]:
    """Keyword arguments for a client of ``library``: bootstrap, security, then ``extra``."""
    if library not in ("kafka-python", "aiokafka"):
        raise ValueError(f"no plain client options for {library!r}; see faust_broker()")
    return {
        "bootstrap_servers": settings.kafka_bootstrap,
        "request_timeout_ms": settings.kafka_request_timeout_ms,
        **settings.kafka_client_options("aiokafka" if library == "aiokafka" else "kafka-python"),
        **extra,
    }


# --- kafka-python ---------------------------------------------------------------------------


def producer(settings: Settings, **extra: Any) -> KafkaProducer:
    """A durable kafka-python producer (acks=all, idempotent)."""
    from kafka import KafkaProducer

    return KafkaProducer(**options(settings, **{**DURABLE, **extra}))


#: kafka-python consumer options every tokenshare consumer takes. Full fetch requests:
#: its incremental fetch sessions (KIP-227) can stop returning records for good once
#: the broker evicts or refuses a session (its cache holds 1,000 by default), which a
#: broker shared by many consumers does. Listing a few partitions per fetch costs nothing.
CONSUMER: dict[str, Any] = {"enable_incremental_fetch_sessions": False}


def consumer(settings: Settings, *topics: str, **extra: Any) -> KafkaConsumer:
    """A kafka-python consumer, subscribed to ``topics`` when any are given."""
    from kafka import KafkaConsumer

    return KafkaConsumer(*topics, **options(settings, **{**CONSUMER, **extra}))


def admin(settings: Settings, **extra: Any) -> KafkaAdminClient:
    """A kafka-python admin client."""
    from kafka import KafkaAdminClient

    return KafkaAdminClient(**options(settings, **extra))


# --- aiokafka -------------------------------------------------------------------------------


def aio_producer(settings: Settings, **extra: Any) -> AIOKafkaProducer:
    """A durable aiokafka producer (acks=all, idempotent); ``await start()`` it."""
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(**options(settings, "aiokafka", **{**DURABLE, **extra}))


def aio_consumer(settings: Settings, *topics: str, **extra: Any) -> AIOKafkaConsumer:
    """An aiokafka consumer, subscribed to ``topics`` when any are given."""
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(*topics, **options(settings, "aiokafka", **extra))


def aio_admin(settings: Settings, **extra: Any) -> AIOKafkaAdminClient:
    """An aiokafka admin client; ``await start()`` it."""
    from aiokafka.admin import AIOKafkaAdminClient

    return AIOKafkaAdminClient(**options(settings, "aiokafka", **extra))


# --- consumer groups --------------------------------------------------------------------------

#: The roles that join consumer groups, and the port that makes each one unique on its host.
Role = Literal["store", "ingest", "faust"]


def instance_id(settings: Settings, role: Role) -> str | None:
    """The static member id of this process in its ``role``'s group, or None (dynamic).

    Stable across restarts of the same process (same host, same port or same
    configured id), unique among processes that run at the same time.
    """
    if not settings.kafka_static_membership:
        return None
    if settings.kafka_instance_id:
        return f"{settings.kafka_instance_id}-{role}"
    port = settings.store_query_port if role == "store" else settings.worker_web_port
    return f"{socket.gethostname()}-{port}-{role}"


def membership(settings: Settings, role: Role) -> dict[str, Any]:
    """Group options for a kafka-python or aiokafka consumer of ``role`` (same spelling)."""
    return {
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
        "group_instance_id": instance_id(settings, role),
    }


def wait_for_partitions(consumer: KafkaConsumer, topics: Sequence[str], wait_s: float) -> None:
    """Return once ``consumer``'s own metadata lists partitions of every topic.

    Call it before ``subscribe``. kafka-python joins the group without waiting for
    the subscribed topics' metadata, so a leader that joins first assigns none of
    their partitions ("No partition metadata for topic ..."). A dynamic member fixes
    that on its next rejoin; a static one does not, because the broker hands a
    rejoining static member its old assignment without a rebalance. The group
    would then read nothing for good.
    """
    deadline = time.monotonic() + wait_s
    missing = list(topics)
    while missing:
        # partitions_for_topic fetches all topics' metadata when one is unknown
        missing = [t for t in missing if not consumer.partitions_for_topic(t)]
        if missing and time.monotonic() > deadline:
            from kafka.errors import KafkaError

            raise KafkaError(
                f"no partition metadata for {', '.join(missing)} after {wait_s:.0f} s: "
                "create the topics (`tokenshare topics`) and check the broker"
            )
        if missing:
            time.sleep(0.2)


# --- Faust ----------------------------------------------------------------------------------


def faust_broker(settings: Settings) -> dict[str, Any]:
    """``faust.App`` keyword arguments for the broker: its URL, the credentials (SASL/TLS)
    acks=all for the app's own producer, and its group membership (see :func:`membership`)."""
    return {
        "broker": f"kafka://{settings.kafka_bootstrap}",
        "producer_acks": -1,
        "broker_request_timeout": settings.kafka_request_timeout_ms / 1000,
        "broker_session_timeout": settings.kafka_session_timeout_ms / 1000,
        "broker_heartbeat_interval": settings.kafka_heartbeat_interval_ms / 1000,
        "consumer_group_instance_id": instance_id(settings, "faust"),
        **settings.kafka_client_options("faust"),
    }
