"""The Quix Streams peer: a StreamingDataFrame doing tokenshare's job, with and
without a window.

Each message is validated and enriched by tokenshare's own code and expanded
into one row per event (`apply(expand=True)`, Quix's way); a BatchingSink
inserts the rows into raw_events with `insert_arrow` at every checkpoint, and
Quix commits after the sink flushed. `--variant windowed` adds, on a branch of
the same frame, a 1-day tumbling window of tokens by origin bloc
(`group_by`, which repartitions through a topic of Quix's own, then
`tumbling_window(...).sum().final()` over the events' own timestamps, state
in RocksDB with its changelog topic). Checkpoints every `--flush-rows` rows
or every second, whichever comes first.

Runs in its own virtualenv (`python -m tokenshare.bench.peer_quix`, see
`tokenshare.bench.venvs`); arguments and result in `tokenshare.bench.peer_job`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from quixstreams import Application, message_context  # type: ignore[import-not-found,unused-ignore]
from quixstreams.sinks import BatchingSink, SinkBatch  # type: ignore[import-not-found,unused-ignore]

from tokenshare.bench.peer_job import (
    Job,
    Store,
    flush_messages,
    from_rows,
    parse_args,
    write_result,
)

#: Events arrive out of order across days; a window keeps them for this long.
GRACE = timedelta(days=400)


class RawEventsSink(BatchingSink):  # type: ignore[misc]
    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store

    def setup(self) -> None:
        pass

    def write(self, batch: SinkBatch) -> None:
        self.store.insert([from_rows([item.value for item in batch])])


def bloc_tokens(row: dict[str, Any]) -> dict[str, Any]:
    """What the window needs, projected before the repartition (less to serialize)."""
    return {"bloc": row["origin_bloc"], "tokens": row["prompt_tokens"] + row["completion_tokens"]}


def event_ms(value: dict[str, Any], key: Any, timestamp: int, headers: Any) -> int:
    return int(value["ts"])


def main() -> None:
    args = parse_args(__doc__)
    job = Job()
    store = Store(args.chdb, args.table)
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=1.0,
        commit_every=flush_messages(args),
        state_dir=str(args.state_dir) if args.state_dir else None,
        loglevel="WARNING",
    )
    topic = app.topic(args.topic, value_deserializer="bytes", key_deserializer="bytes")

    def enrich(value: bytes) -> list[dict[str, Any]]:
        ctx = message_context()
        return job.rows(args.topic, ctx.partition, ctx.offset, value)

    sdf = app.dataframe(topic).apply(enrich, expand=True)
    sdf.sink(RawEventsSink(store))
    if args.variant == "windowed":
        by_bloc = sdf.set_timestamp(event_ms).apply(bloc_tokens).group_by("bloc")
        tokens = by_bloc.apply(lambda row: row["tokens"])
        tokens.tumbling_window(timedelta(days=1), grace_ms=GRACE).sum().final()
    app.run()
    write_result(args.result, store, rejected=job.rejected)
    store.close()


if __name__ == "__main__":
    main()
