"""The model catalog: shipped data, lookup fallbacks, slug normalisation, load errors."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from tests.paths import SHARED
from tokenshare.schema.catalog import (
    DEFAULT_PATH,
    UNIDENTIFIED,
    Catalog,
    CatalogError,
    ModelInfo,
    normalize_slug,
    size_class_of,
)
from tokenshare.schema.vocabulary import CATALOG_DIMENSIONS

WEEKLY_CSV = SHARED / "data" / "openrouter-weekly-top10.csv"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def _weekly_slugs() -> list[str]:
    if not WEEKLY_CSV.exists():
        pytest.skip(f"{WEEKLY_CSV} not available")
    with WEEKLY_CSV.open(newline="") as f:
        return sorted({row["slug"] for row in csv.DictReader(f)})


# --- the shipped catalog --------------------------------------------------------------


def test_every_weekly_top10_slug_is_identified(catalog: Catalog) -> None:
    slugs = [s for s in _weekly_slugs() if not s.startswith("openrouter/")]
    assert len(slugs) > 30
    missing = [s for s in slugs if not catalog.lookup(s).identified]
    assert missing == []


def test_openrouter_stealth_models_stay_unidentified(catalog: Catalog) -> None:
    for slug in [s for s in _weekly_slugs() if s.startswith("openrouter/")]:
        info = catalog.lookup(slug)
        assert not info.identified
        assert info.author == "openrouter"
        assert (info.origin_bloc, info.origin_country, info.lab) == (UNIDENTIFIED,) * 3


def test_catalog_is_large_enough(catalog: Catalog) -> None:
    assert len(catalog) >= 70
    assert catalog.version == json.loads(DEFAULT_PATH.read_bytes())["version"]


#: slug -> "canonical-model bloc country weights size_class reasoning" ("=": the slug normalised)
FACTS = {
    "deepseek/deepseek-v3.2-20251201": "= China CN open large reasoning",
    "deepseek/deepseek-chat": "deepseek/deepseek-v3 China CN open large non-reasoning",
    "anthropic/claude-4.5-sonnet-20250929": "= US US closed undisclosed reasoning",
    "anthropic/claude-opus-4.6": "anthropic/claude-4.6-opus US US closed undisclosed reasoning",
    "mistralai/mistral-nemo": "= RoW FR open small non-reasoning",
    "mistralai/mistral-large-2512": "mistralai/mistral-large-3 RoW FR open large non-reasoning",
    "openai/gpt-oss-120b": "= US US open large reasoning",
    "openai/gpt-oss-20b": "= US US open medium reasoning",
    "qwen/qwen3-30b-a3b": "= China CN open medium reasoning",
    "qwen/qwen3-235b-a22b-2507": "qwen/qwen3-235b-a22b-instruct China CN open large non-reasoning",
    "qwen/qwen3.6-plus-preview:free": "qwen/qwen3.6-plus China CN closed undisclosed reasoning",
    "google/gemini-2.5-flash-lite": "= US US closed undisclosed reasoning",
    "meta-llama/llama-3.3-70b-instruct": "= US US open medium non-reasoning",
    "cohere/command-a-03-2025": "cohere/command-a RoW CA open large non-reasoning",
    "ai21/jamba-mini-1.7": "= RoW IL open medium non-reasoning",
}


@pytest.mark.parametrize(("slug", "facts"), FACTS.items())
def test_known_facts(catalog: Catalog, slug: str, facts: str) -> None:
    model, *expected = facts.split()
    model = normalize_slug(slug) if model == "=" else model
    info = catalog.lookup(slug)
    assert info.identified
    assert (info.model, info.author) == (model, model.partition("/")[0])
    got = [info.origin_bloc, info.origin_country, info.weights, info.size_class, info.reasoning]
    assert got == expected


@pytest.mark.parametrize(
    ("slug", "model"),
    [
        ("anthropic/claude-sonnet-4.5", "anthropic/claude-4.5-sonnet"),
        ("anthropic/claude-sonnet-4-5-20250929", "anthropic/claude-4.5-sonnet"),
        ("google/gemini-2.0-flash-001", "google/gemini-2.0-flash"),
        ("mistralai/mistral-large-2411", "mistralai/mistral-large"),
        ("qwen/qwen3-235b-a22b-thinking-2507", "qwen/qwen3-235b-a22b-thinking"),
        ("deepseek/deepseek-chat-v3-0324", "deepseek/deepseek-v3"),
    ],
)
def test_aliases_and_dated_snapshots(catalog: Catalog, slug: str, model: str) -> None:
    assert catalog.lookup(slug).model == model


def test_catalog_data_is_consistent() -> None:
    doc = json.loads(DEFAULT_PATH.read_bytes())
    assert "openrouter" not in doc["authors"]
    for slug, entry in doc["models"].items():
        author = doc["authors"][slug.partition("/")[0]]
        assert (entry["lab"], entry["country"]) == (author["lab"], author["country"]), slug
        if entry["weights"] == "closed":
            assert entry["params_b"] is None, f"{slug}: closed models have no disclosed size"


# --- lookup of what the catalog does not know -----------------------------------------


def test_unknown_model_of_known_author_gets_origin_only(catalog: Catalog) -> None:
    info = catalog.lookup("DeepSeek/deepseek-v9-ultra-20270101:free")
    assert info == ModelInfo(
        model="deepseek/deepseek-v9-ultra",
        author="deepseek",
        lab="DeepSeek",
        origin_country="CN",
        origin_bloc="China",
        weights=UNIDENTIFIED,
        params_b=None,
        size_class=UNIDENTIFIED,
        reasoning=UNIDENTIFIED,
        identified=False,
        hosting_country="CN",
    )


def test_unknown_author_is_unidentified(catalog: Catalog) -> None:
    info = catalog.lookup("somelab/new-model-0312:beta")
    assert (info.model, info.author, info.identified) == ("somelab/new-model", "somelab", False)
    assert info.params_b is None
    for name in ("lab", "origin_country", "origin_bloc", "weights", "size_class", "reasoning"):
        assert getattr(info, name) == UNIDENTIFIED


@pytest.mark.parametrize("slug", ["", "no-slash", "/", ":free", "a/b:c:d", "UPPER/Case"])
def test_lookup_never_raises(catalog: Catalog, slug: str) -> None:
    assert not catalog.lookup(slug).identified


def test_lookup_is_memoised(catalog: Catalog) -> None:
    assert catalog.lookup("x-ai/grok-4.1-fast:free") is catalog.lookup("x-ai/grok-4.1-fast:free")
    assert catalog.lookup("nobody/thing") is catalog.lookup("nobody/thing")


def test_dimensions_are_model_info_fields() -> None:
    fields = {f.name for f in dataclasses.fields(ModelInfo)}
    assert set(CATALOG_DIMENSIONS) <= fields


@pytest.mark.parametrize(
    ("params_b", "size"),
    [(None, "undisclosed"), (8, "small"), (14.9, "small"), (15, "medium"), (70, "medium"),
     (70.1, "large"), (1600, "large")],
)  # fmt: skip
def test_size_class_boundaries(params_b: float | None, size: str) -> None:
    assert size_class_of(params_b) == size


# --- normalisation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slug", "expected"),
    [
        ("anthropic/claude-4.5-sonnet-20250929", "anthropic/claude-4.5-sonnet"),
        ("xiaomi/mimo-v2-flash-20251210:free", "xiaomi/mimo-v2-flash"),
        ("qwen/qwen3.6-plus-04-02:free", "qwen/qwen3.6-plus"),
        ("qwen/qwen3-235b-a22b-2507", "qwen/qwen3-235b-a22b"),
        ("moonshotai/kimi-k2.5-0127", "moonshotai/kimi-k2.5"),
        ("openai/gpt-4o-2024-11-20", "openai/gpt-4o"),
        ("google/gemini-2.5-flash-preview-09-2025", "google/gemini-2.5-flash-preview"),
        ("nvidia/nemotron-3-super-120b-a12b-20230311:free", "nvidia/nemotron-3-super-120b-a12b"),
        ("X-AI/Grok-4.1-Fast:Free", "x-ai/grok-4.1-fast"),
        ("anthropic/claude-3.7-sonnet:thinking", "anthropic/claude-3.7-sonnet"),
        # version numbers that look numeric but are not dates stay
        ("deepseek/deepseek-v3.2", "deepseek/deepseek-v3.2"),
        ("meta-llama/llama-3.1-405b", "meta-llama/llama-3.1-405b"),
        ("google/gemini-2.0-flash-001", "google/gemini-2.0-flash-001"),
        ("qwen/qwen3-coder-30b-a3b-instruct", "qwen/qwen3-coder-30b-a3b-instruct"),
        ("some/model-2048", "some/model-2048"),
        ("some/model-13-45", "some/model-13-45"),
        ("x-ai/grok-code-fast-1", "x-ai/grok-code-fast-1"),
    ],
)
def test_normalize_slug(slug: str, expected: str) -> None:
    assert normalize_slug(slug) == expected


# --- a broken catalog fails loudly --------------------------------------------------------


def _minimal() -> dict[str, Any]:
    return {
        "version": "test.1",
        "sources": [{"title": "OpenRouter models", "url": "https://openrouter.ai/models"}],
        "authors": {"deepseek": {"lab": "DeepSeek", "country": "CN"}},
        "models": {
            "deepseek/deepseek-v3.2": {
                "name": "DeepSeek V3.2", "lab": "DeepSeek", "country": "CN", "weights": "open",
                "params_b": 671, "active_params_b": 37, "reasoning": True,
            }
        },
    }  # fmt: skip


def _load(tmp_path: Path, doc: dict[str, Any] | str) -> Catalog:
    path = tmp_path / "catalog.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return Catalog.load(path)


def test_minimal_catalog_loads(tmp_path: Path) -> None:
    catalog = _load(tmp_path, _minimal())
    assert (len(catalog), catalog.version) == (1, "test.1")
    assert catalog.lookup("deepseek/deepseek-v3.2-20251201").identified


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("weights", "opne", r"models\['deepseek/deepseek-v3.2'\]\.weights: Input should be 'open'"),
        ("country", "cn", r"models\['deepseek/deepseek-v3.2'\]\.country: String should match"),
        ("params_b", "671", r"models\['deepseek/deepseek-v3.2'\]\.params_b"),
        ("active_params_b", 700, r"active_params_b needs params_b and must not exceed it"),
        ("param_b", 671, r"models\['deepseek/deepseek-v3.2'\]\.param_b: Extra inputs"),
    ],
)
def test_bad_model_entry_is_named(tmp_path: Path, field: str, value: object, message: str) -> None:
    doc = _minimal()
    doc["models"]["deepseek/deepseek-v3.2"][field] = value
    with pytest.raises(CatalogError, match=message):
        _load(tmp_path, doc)


def test_key_that_cannot_match_is_refused(tmp_path: Path) -> None:
    doc = _minimal()
    doc["models"]["deepseek/deepseek-v3.2-20251201"] = doc["models"].pop("deepseek/deepseek-v3.2")
    with pytest.raises(CatalogError, match="key is not normalised"):
        _load(tmp_path, doc)


def test_model_of_unlisted_author_is_refused(tmp_path: Path) -> None:
    doc = _minimal()
    doc["models"]["qwen/qwen3-8b"] = dict(doc["models"]["deepseek/deepseek-v3.2"])
    with pytest.raises(CatalogError, match=r"models\['qwen/qwen3-8b'\]: author 'qwen' is missing"):
        _load(tmp_path, doc)


def test_duplicate_alias_is_refused(tmp_path: Path) -> None:
    doc = _minimal()
    doc["models"]["deepseek/deepseek-v3.2"]["aliases"] = ["deepseek/deepseek-v3.2"]
    with pytest.raises(CatalogError, match=r"alias 'deepseek/deepseek-v3\.2' already names"):
        _load(tmp_path, doc)


def test_invalid_json_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"(?s)invalid model catalog .*: Invalid JSON"):
        _load(tmp_path, '{"version": "x",')
