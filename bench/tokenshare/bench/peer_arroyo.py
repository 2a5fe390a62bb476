"""The sentry-arroyo peer: RunTask(validate + enrich) -> BatchStep -> RunTask(insert)
-> CommitOffsets, the pipeline arroyo's docs build, doing tokenshare's job.

Runs in its own virtualenv (`python -m tokenshare.bench.peer_arroyo`, see
`tokenshare.bench.venvs`); arguments and result in `tokenshare.bench.peer_job`.
Offsets are committed after every insert (commit policy IMMEDIATE), as
tokenshare's store does.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from types import FrameType

import pyarrow as pa
from arroyo.backends.kafka import (  # type: ignore[import-not-found,unused-ignore]
    KafkaConsumer,
    KafkaPayload,
)
from arroyo.backends.kafka.configuration import (  # type: ignore[import-not-found,unused-ignore]
    build_kafka_consumer_configuration,
)
from arroyo.commit import IMMEDIATE  # type: ignore[import-not-found,unused-ignore]
from arroyo.processing import StreamProcessor  # type: ignore[import-not-found,unused-ignore]
from arroyo.processing.strategies import (  # type: ignore[import-not-found,unused-ignore]
    BatchStep,
    CommitOffsets,
    ProcessingStrategy,
    ProcessingStrategyFactory,
    RunTask,
)
from arroyo.types import (  # type: ignore[import-not-found,unused-ignore]
    Commit,
    Message,
    Partition,
    Topic,
)

from tokenshare.bench.peer_job import (
    Job,
    Store,
    flush_messages,
    joined,
    parse_args,
    write_result,
)


def main() -> None:
    args = parse_args(__doc__)
    job = Job()
    store = Store(args.chdb, args.table)
    batch_size = flush_messages(args)

    def enrich(message: Message[KafkaPayload]) -> list[pa.RecordBatch]:
        value = message.value  # BrokerValue: partition and offset of the record
        return job.batches(args.topic, value.partition.index, value.offset, value.payload.value)

    def insert(message: Message[list[object]]) -> int:
        return store.insert([joined(part for v in message.payload for part in v.payload)])

    class Factory(ProcessingStrategyFactory[KafkaPayload]):  # type: ignore[misc]
        def create_with_partitions(
            self, commit: Commit, partitions: Mapping[Partition, int]
        ) -> ProcessingStrategy[KafkaPayload]:
            return RunTask(
                enrich,
                BatchStep(
                    max_batch_size=batch_size,
                    max_batch_time=1.0,
                    next_step=RunTask(insert, CommitOffsets(commit)),
                ),
            )

    consumer = KafkaConsumer(
        build_kafka_consumer_configuration(
            {},
            group_id=args.group,
            auto_offset_reset="earliest",
            bootstrap_servers=[args.bootstrap],
        )
    )
    processor = StreamProcessor(consumer, Topic(args.topic), Factory(), commit_policy=IMMEDIATE)

    def shutdown(signum: int, frame: FrameType | None) -> None:
        processor.signal_shutdown()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    processor.run()
    write_result(args.result, store, rejected=job.rejected)
    store.close()


if __name__ == "__main__":
    main()
