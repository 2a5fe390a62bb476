"""Baseline b2: a plain Faust agent over raw messages.

`value_serializer="raw"`, `orjson.loads` per message, token sums per
(author, UTC day) in a dict: Faust's per-message machinery and little else.
"""

from __future__ import annotations

import orjson
from faust.types import StreamT

from tokenshare.bench.faust_base import Stopwatch, make_app, parse_args, run


def main() -> None:
    args = parse_args()
    app = make_app(args)
    topic = app.topic(args.topic, key_serializer="raw", value_serializer="raw")
    totals: dict[tuple[str, str], int] = {}
    watch = Stopwatch(args.events, args.result)

    @app.agent(topic)
    async def aggregate(values: StreamT[bytes]) -> None:
        async for value in values:
            doc = orjson.loads(value)
            for e in doc if isinstance(doc, list) else (doc,):
                key = (e["model"].split("/", 1)[0], e["ts"][:10])
                totals[key] = totals.get(key, 0) + e["prompt_tokens"] + e["completion_tokens"]
                watch.tick()

    run(app)


if __name__ == "__main__":
    main()
