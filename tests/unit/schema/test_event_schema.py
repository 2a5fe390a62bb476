"""The exported JSON Schema matches the pydantic contract."""

from __future__ import annotations

from tokenshare.schema.jsonschema import SCHEMA_FILE, render


def test_exported_schemas_are_current() -> None:
    for path, content in render().items():
        assert path.read_bytes() == content, f"run `tokenshare schema` and commit {path.name}"


def test_schema_names_every_required_field() -> None:
    import orjson

    doc = orjson.loads(SCHEMA_FILE.read_bytes())
    required = set(doc["$defs"]["TokenEvent"]["required"])
    assert required == {"event_id", "ts", "model", "provider", "prompt_tokens", "completion_tokens"}
