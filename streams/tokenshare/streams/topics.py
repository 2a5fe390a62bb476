"""The topics of a tokenshare deployment, created in one place."""

from __future__ import annotations

import logging

from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from tokenshare import kafka_clients
from tokenshare.retry import RetryPolicy, retrying
from tokenshare.schema.changes import CHANGE_PARTITIONS
from tokenshare.settings import Settings

log = logging.getLogger("tokenshare.topics")


#: Pauses while a starting process waits for its broker (each attempt also takes up to
#: the admin client's 5 s bootstrap timeout).
KAFKA_RECONNECT = RetryPolicy(first_s=0.5, max_s=5.0)


class KafkaUnavailable(KafkaError):  # type: ignore[misc]
    """The broker could not be reached in time; the message says what to do."""


def topic_specs(settings: Settings) -> list[NewTopic]:
    # Room for the largest message a producer may send, plus framing.
    max_bytes = str(max(settings.max_message_bytes, 8 * 1024 * 1024) + 64 * 1024)
    # acks=all is only as strong as the in-sync minimum: 2 of 3 replicas (1 on one broker).
    min_isr = str(max(1, min(2, settings.replication_factor - 1)))
    common = {"max.message.bytes": max_bytes, "min.insync.replicas": min_isr}
    return [
        NewTopic(
            settings.events_topic,
            settings.partitions,
            settings.replication_factor,
            topic_configs=common,
        ),
        NewTopic(
            settings.rows_topic,
            settings.partitions,
            settings.replication_factor,
            topic_configs=common,
        ),
        NewTopic(settings.dlq_topic, 1, settings.replication_factor, topic_configs=common),
        # One partition each: a total order of alerts is the ledger's whole point.
        NewTopic(settings.alerts_topic, 1, settings.replication_factor, topic_configs=common),
        NewTopic(settings.shares_topic, 1, settings.replication_factor, topic_configs=common),
        # One partition per dimension: the share stage's unit of work across workers.
        NewTopic(
            settings.changes_topic,
            CHANGE_PARTITIONS,
            settings.replication_factor,
            topic_configs=common,
        ),
    ]


def rows_partition(src_partition: int, rows_partitions: int) -> int:
    """The rows-topic partition the worker writes a source partition's rows to.

    One source, one rows partition: the store reads each source's rows in order.
    And no two sources share one while the topics have as many partitions: the
    lag of rows partition p is then source p's alone (``streams.shares.backlog``).
    """
    return src_partition % rows_partitions


def ensure_topics(settings: Settings, wait_s: float = 0.0) -> list[str]:
    """Create missing topics; returns the names created.

    With `wait_s`, an unreachable broker is retried for that long: a worker or
    store (re)started during a broker restart waits for it instead of exiting.
    """
    retry = retrying(
        KAFKA_RECONNECT,
        on=KafkaError,
        deadline_s=wait_s,
        log=log,
        what=f"Kafka at {settings.kafka_bootstrap} not reachable",
    )
    try:
        return retry(_create_missing, settings)
    except KafkaError as exc:
        raise KafkaUnavailable(
            f"cannot reach Kafka at {settings.kafka_bootstrap} ({exc}); waited "
            f"{wait_s:.0f} s. Start the broker (`tokenshare stack up` locally) or "
            "fix --bootstrap / TOKENSHARE_KAFKA_BOOTSTRAP"
        ) from exc


def _create_missing(settings: Settings) -> list[str]:
    admin = kafka_clients.admin(
        settings,
        client_id=f"{settings.worker_id}-admin",
        # Fail an attempt in seconds: ensure_topics decides how long to keep trying.
        bootstrap_timeout_ms=5_000,
        reconnect_backoff_max_ms=1_000,
    )
    try:
        existing = set(admin.list_topics())
        missing = [t for t in topic_specs(settings) if t.name not in existing]
        created = []
        for topic in missing:
            try:
                admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass  # another process won the race
        return created
    finally:
        admin.close()


def group_lag(settings: Settings, group: str, topic: str) -> int | None:
    """Messages of `topic` not yet committed by `group`; None before its first commit."""
    from kafka import TopicPartition

    admin = kafka_clients.admin(settings)
    consumer = kafka_clients.consumer(settings)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = consumer.end_offsets(tps)
        try:
            committed = admin.list_group_offsets({group: tps}).get(group, {})
        except KafkaError:
            return None  # coordinator not ready (a new group or broker): unknown yet
        if not any(ends.values()):
            return 0
        if not committed:
            return None
        lag = 0
        for tp, end in ends.items():
            done = committed[tp].offset if tp in committed else 0
            lag += int(end) - max(int(done), 0)
        return lag
    finally:
        consumer.close()
        admin.close()
