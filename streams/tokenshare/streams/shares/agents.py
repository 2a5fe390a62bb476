"""The share stage's Faust parts: the agent over the rollup-changes topic, the timer
that sends a worker's own notices, and the rebalance hook.

Faust spreads the topic's partitions (one per dimension, each standing for some
evaluation keys) over the workers of the app and moves them, with their table
partitions, when a worker comes or goes; the agent on each worker sees only its
partitions' notices, so each key is evaluated by one worker at a time
(``service`` does the evaluation).

A notice with a newer one behind it in its partition is skipped: the newer one
is about the same keys, and its evaluation reads everything stored up to it.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.types import TP, EventT, Message
from pydantic import ValidationError

from tokenshare.schema.changes import CHANGE_PARTITIONS, RollupChange
from tokenshare.settings import Settings
from tokenshare.streams.shares.service import RETRY_S, ShareService

log = logging.getLogger("tokenshare.shares")


def changes_topic(app: faust.App, settings: Settings) -> faust.TopicT:
    return app.topic(
        settings.changes_topic,
        partitions=CHANGE_PARTITIONS,
        key_serializer="raw",
        value_serializer="raw",
    )


def install_share_agent(app: faust.App, settings: Settings, shares: ShareService) -> None:
    """The agent, the timer and the rebalance hook of the share stage, on `app`."""
    topic = changes_topic(app, settings)
    name = topic.get_topic_name()
    shares.highwater = lambda partition: app.consumer.highwater(TP(name, partition))

    async def evaluate_changes(stream: faust.StreamT[bytes]) -> None:
        event: EventT[bytes]
        async for event in stream.events():
            message = event.message
            if _superseded(app, message):
                shares.stats.skipped += 1
                continue
            try:
                notice = RollupChange.decode(event.value)
            except ValidationError as exc:  # written by our own store: a bug or a version skew
                log.error("unreadable change notice %s@%d: %s", message.tp, message.offset, exc)
                continue
            try:
                await shares.evaluate(message.partition, notice, message.offset)
            except Exception:  # one failed evaluation must not stop the agent
                shares.stats.failed_ticks += 1
                shares.schedule(message.partition, RETRY_S)
                log.exception("share evaluation of partition %d failed", message.partition)

    app.agent(topic, name="shares-evaluate")(evaluate_changes)

    @app.timer(settings.shares_interval_s)  # type: ignore[untyped-decorator]
    async def send_own_notices() -> None:
        await shares.send_due()

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        assigned: set[TP] = args[0]  # sent as on_partitions_assigned.send(assigned)
        shares.assigned(tp.partition for tp in assigned if tp.topic == name)


def _superseded(app: faust.App, message: Message) -> bool:
    highwater = app.consumer.highwater(message.tp)  # the next offset, as last fetched
    return highwater is not None and message.offset < highwater - 1
