"""The local stack: a real single-node Apache Kafka broker (KRaft) for development and tests.

``tokenshare stack up`` (see :mod:`tokenshare.cli.stack`) or, from Python::

    kafka = LocalKafka(Path(".tokenshare"))
    kafka.start()          # fetches the jars from Maven Central the first time
    ... kafka.bootstrap ...  # "127.0.0.1:19092"
    kafka.stop()

With ``secure=SecureListener(port, username, password)`` it also serves SASL/SCRAM over
TLS on that port (see :mod:`tokenshare.localstack.tls`).
"""

from tokenshare.localstack.kafka import (
    KAFKA_VERSION,
    LocalKafka,
    LocalStackError,
    SecureListener,
    cache_dir,
    ensure_jars,
)

__all__ = [
    "KAFKA_VERSION",
    "LocalKafka",
    "LocalStackError",
    "SecureListener",
    "cache_dir",
    "ensure_jars",
]
