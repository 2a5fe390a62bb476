"""JSON Schemas of the contracts, exported into the repository.

`schema/event.schema.json` (the input), `schema/alert.schema.json` and
`schema/share_snapshot.schema.json` (the outputs) are generated from the
pydantic models; a test fails when they drift apart. Regenerate with
`tokenshare schema`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter

from tokenshare.schema.event import TokenEvent
from tokenshare.schema.outputs import AlertMessage, ShareSnapshot

SCHEMA_FILE = Path(__file__).with_name("event.schema.json")
OUTPUT_SCHEMAS: dict[str, type[BaseModel]] = {
    "alert.schema.json": AlertMessage,
    "share_snapshot.schema.json": ShareSnapshot,
}


def event_schema() -> dict[str, Any]:
    one = TokenEvent.model_json_schema(mode="validation")
    many = TypeAdapter(list[TokenEvent]).json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://tokenshare.dev/schema/event.schema.json",
        "title": "tokenshare event message",
        "description": "A Kafka message value: one token event, or an array of token events.",
        "oneOf": [{"$ref": "#/$defs/TokenEvent"}, {"type": "array", "items": many["items"]}],
        "$defs": {**one.pop("$defs", {}), "TokenEvent": one, **many.get("$defs", {})},
    }


def _dump(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def render() -> dict[Path, bytes]:
    """Every schema file and its current content."""
    files = {SCHEMA_FILE: _dump(event_schema())}
    for name, model in OUTPUT_SCHEMAS.items():
        files[SCHEMA_FILE.with_name(name)] = _dump(model.model_json_schema())
    return files


def export() -> list[Path]:
    written = []
    for path, content in render().items():
        path.write_bytes(content)
        written.append(path)
    return written
