"""Baseline b1: the idiomatic Faust app, as the Faust documentation teaches it.

A Record per event, a per-event agent, and a table of token sums by model in
hopping 7-day windows advancing daily, in event time
(`app.Table(...).hopping(...).relative_to_field(...)`).
"""

from datetime import timedelta

import faust
from faust.types import StreamT

from tokenshare.bench.faust_base import Stopwatch, make_app, parse_args, run


class TokenEvent(faust.Record, serializer="json"):
    event_id: str
    ts: str
    model: str
    provider: str
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    app_id: str | None = None
    user_id: str | None = None
    category: str | None = None
    region: str | None = None
    language: str | None = None
    tool_calls: int = 0
    latency_ms: int | None = None
    finish_reason: str | None = None
    streamed: bool = False


def main() -> None:
    args = parse_args()
    app = make_app(args)
    topic = app.topic(args.topic, key_type=bytes, value_type=TokenEvent)
    tokens = (
        app.Table("tokens_by_model", default=int)
        .hopping(timedelta(days=7), timedelta(days=1), expires=timedelta(days=30))
        .relative_to_field(TokenEvent.ts)  # type: ignore[arg-type]
    )
    watch = Stopwatch(args.events, args.result)

    @app.agent(topic)
    async def aggregate(events: StreamT[TokenEvent]) -> None:
        async for event in events:
            tokens[event.model] += event.prompt_tokens + event.completion_tokens
            watch.tick()

    run(app)


if __name__ == "__main__":
    main()
