"""The model catalog: who made a model, where, and what kind of model it is.

Share queries group traffic by origin (China / US / rest of world), author,
open or closed weights, size and reasoning. None of that is in a request; it
comes from ``model_catalog.json``, a versioned data file shipped next to this
module, and is resolved once per distinct slug (the hot path calls
:meth:`Catalog.lookup` per event).

A slug the catalog does not know is never an error: its origin falls back to
the author prefix (``deepseek/...`` is Chinese even for a model released this
morning), and whatever cannot be known is ``unidentified`` rather than guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

UNIDENTIFIED = "unidentified"
#: Size class of a catalogued model whose lab does not publish its parameter count
#: (every closed model): known to be unknown, unlike an UNIDENTIFIED slug.
UNDISCLOSED = "undisclosed"

#: The shipped catalog.
DEFAULT_PATH = Path(__file__).with_name("model_catalog.json")

#: Countries that form a bloc of their own; every other known country is "RoW".
_BLOCS = {"CN": "China", "US": "US"}
#: Size classes by total parameters in billions: small < 15 <= medium <= 70 < large.
SMALL_BELOW_B = 15.0
LARGE_ABOVE_B = 70.0
#: Distinct raw slugs remembered by lookup(). Slugs come from clients, so the cache
#: is bounded; when full it is simply cleared (real traffic has a few hundred slugs).
_CACHE_MAX = 65_536

# A trailing release-date tag names a snapshot of a model, not another model:
# -20250929, -2024-11-20, -09-2025, -04-02, and four digits read as MMDD (-0127)
# or YYMM (-2507). Only plausible dates match, so "-405b", "-001" or "-2048" stay.
_MONTH = r"(?:0[1-9]|1[0-2])"
_DAY = r"(?:0[1-9]|[12]\d|3[01])"
_DATE_TAG = re.compile(
    rf"-(?:20\d\d{_MONTH}{_DAY}|20\d\d-{_MONTH}-{_DAY}|{_MONTH}-20\d\d"
    rf"|{_MONTH}-{_DAY}|{_MONTH}{_DAY}|2[3-9]{_MONTH})$"
)


def _strip_variant(slug: str) -> str:
    """Lowercase, without the ":free" / ":beta" / ":thinking" ... routing variant."""
    return slug.strip().lower().partition(":")[0]


def normalize_slug(slug: str) -> str:
    """The slug without case, variant suffix and trailing release-date tag.

    ``anthropic/claude-4.5-sonnet-20250929`` -> ``anthropic/claude-4.5-sonnet``,
    ``qwen/qwen3.6-plus-04-02:free`` -> ``qwen/qwen3.6-plus``.
    """
    return _undated(_strip_variant(slug))


def _undated(slug: str) -> str:
    return _DATE_TAG.sub("", slug, count=1)


def origin_bloc_of(country: str) -> str:
    """The bloc of an ISO country code: China, US, RoW (any other), or unidentified."""
    if country == UNIDENTIFIED:
        return UNIDENTIFIED
    return _BLOCS.get(country, "RoW")


def size_class_of(params_b: float | None) -> str:
    """Size class from total parameters (billions); None (not published) -> undisclosed."""
    if params_b is None:
        return UNDISCLOSED
    if params_b < SMALL_BELOW_B:
        return "small"
    return "medium" if params_b <= LARGE_ABOVE_B else "large"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the catalog says about one slug. Shared between lookups: never mutate.

    Every ``vocabulary.CATALOG_DIMENSIONS`` is a field of it.
    """

    model: str  # canonical catalog slug, or the normalised input slug when unknown
    author: str  # slug prefix (stable key, e.g. "deepseek"); display name is `lab`
    lab: str
    origin_country: str  # ISO 3166 alpha-2 or UNIDENTIFIED
    origin_bloc: str  # "China" | "US" | "RoW" | UNIDENTIFIED
    weights: str  # "open" | "closed" | UNIDENTIFIED
    params_b: float | None
    size_class: str  # "small" | "medium" | "large" | UNDISCLOSED | UNIDENTIFIED
    reasoning: str  # "reasoning" | "non-reasoning" | UNIDENTIFIED
    identified: bool  # True when the slug matched a catalog model
    hosting_country: str = UNIDENTIFIED  # where the lab's own API serves from (ISO code)


class CatalogError(ValueError):
    """The catalog file is not valid; the message names every bad entry."""


# --- file format (validated on load, so that a broken edit fails loudly) ----------

_Text = Annotated[str, StringConstraints(min_length=1, max_length=200)]
_Prose = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
_Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
_Author = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
_Slug = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}/[a-z0-9][a-z0-9._-]{0,127}$")
]
_Params = Annotated[float, Field(gt=0, lt=100_000)]


class _Strict(BaseModel):
    # Unknown keys are typos ("param_b"), not extensions: refuse them.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SourceEntry(_Strict):
    title: _Text
    url: Annotated[str, StringConstraints(pattern=r"^https://\S+$")]


class AuthorEntry(_Strict):
    lab: _Text
    country: _Country
    #: Where the lab's own API is hosted; open weights are also served by hosts elsewhere.
    hosting: _Country | None = None
    note: _Prose | None = None


class ModelEntry(_Strict):
    name: _Text
    lab: _Text
    country: _Country
    weights: Literal["open", "closed"]
    params_b: _Params | None  # total parameters; null when undisclosed
    active_params_b: _Params | None = None  # per token, for mixture-of-experts models
    reasoning: bool  # can produce reasoning (thinking) tokens, always or on request
    aliases: tuple[_Slug, ...] = ()  # other slugs (lowercase) for the same model
    note: _Prose | None = None  # why a fact is uncertain

    @model_validator(mode="after")
    def _active_within_total(self) -> Self:
        if self.active_params_b is not None and (
            self.params_b is None or self.active_params_b > self.params_b
        ):
            raise ValueError("active_params_b needs params_b and must not exceed it")
        return self


class CatalogFile(_Strict):
    version: _Text
    sources: tuple[SourceEntry, ...] = Field(min_length=1)
    notes: tuple[_Prose, ...] = ()
    authors: dict[_Author, AuthorEntry]
    models: dict[_Slug, ModelEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _keys_resolvable(self) -> Self:
        problems: list[str] = []
        owner: dict[str, str] = {slug: slug for slug in self.models}
        for slug, entry in self.models.items():
            if normalize_slug(slug) != slug:
                problems.append(
                    f"models[{slug!r}]: key is not normalised, so no slug would ever match it;"
                    f" use {normalize_slug(slug)!r} and list the dated slug in aliases"
                )
            author = slug.partition("/")[0]
            if author not in self.authors:
                problems.append(f"models[{slug!r}]: author {author!r} is missing from authors")
            for alias in entry.aliases:
                if alias in owner:
                    problems.append(
                        f"models[{slug!r}]: alias {alias!r} already names {owner[alias]!r}"
                    )
                owner[alias] = slug
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _describe(path: Path, exc: ValidationError) -> str:
    lines = [f"invalid model catalog {path} ({exc.error_count()} error(s)):"]
    for err in exc.errors():
        # models['deepseek/deepseek-v3.2'].weights reads better than models.deepseek/...
        loc = "".join(
            f".{part}" if isinstance(part, str) and "/" not in part else f"[{part!r}]"
            for part in err["loc"]
        ).lstrip(".")
        lines.append(f"  {loc or '<file>'}: {err['msg']}")
    return "\n".join(lines)


# --- the catalog -------------------------------------------------------------------


class Catalog:
    """Slug -> ModelInfo, from a validated catalog file; lookups are memoised."""

    def __init__(self, data: CatalogFile) -> None:
        self.version: str = data.version
        self._authors = data.authors
        self._known = {
            slug: _identified(slug, entry, data.authors.get(slug.partition("/")[0]))
            for slug, entry in data.models.items()
        }
        self._index: dict[str, ModelInfo] = dict(self._known)
        for slug, entry in data.models.items():
            self._index.update(dict.fromkeys(entry.aliases, self._known[slug]))
        self._cache: dict[str, ModelInfo] = {}

    @classmethod
    def load(cls, path: Path | None = None) -> Catalog:
        """Load and validate a catalog file (default: the one shipped with the package)."""
        path = DEFAULT_PATH if path is None else path
        try:
            data = CatalogFile.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            raise CatalogError(_describe(path, exc)) from None
        return cls(data)

    def __len__(self) -> int:
        return len(self._known)

    def slugs(self) -> list[str]:
        """Every catalogued model's canonical slug, in file order."""
        return list(self._known)

    def authors(self) -> dict[str, AuthorEntry]:
        """Author prefix -> lab entry, in file order."""
        return dict(self._authors)

    def lookup(self, slug: str) -> ModelInfo:
        """What is known about `slug`; never raises, unknown parts are UNIDENTIFIED."""
        info = self._cache.get(slug)
        if info is None:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            info = self._cache[slug] = self._resolve(slug)
        return info

    def _resolve(self, slug: str) -> ModelInfo:
        # The slug with its date tag is tried first, so that an alias can tell apart
        # snapshots whose tag matters (qwen3-235b-a22b-2507 is the non-thinking Instruct).
        base = _strip_variant(slug)
        found = self._index.get(base)
        model = _undated(base)
        if found is None:
            found = self._index.get(model)
        if found is not None:
            return found
        author = model.partition("/")[0] if "/" in model else ""
        known = self._authors.get(author)
        return ModelInfo(
            model=model,
            author=author or UNIDENTIFIED,
            lab=known.lab if known else UNIDENTIFIED,
            origin_country=known.country if known else UNIDENTIFIED,
            origin_bloc=origin_bloc_of(known.country) if known else UNIDENTIFIED,
            weights=UNIDENTIFIED,
            params_b=None,
            size_class=UNIDENTIFIED,
            reasoning=UNIDENTIFIED,
            identified=False,
            hosting_country=_hosting(known),
        )


def _hosting(author: AuthorEntry | None) -> str:
    if author is None:
        return UNIDENTIFIED
    return author.hosting or author.country


def _identified(slug: str, entry: ModelEntry, author: AuthorEntry | None) -> ModelInfo:
    return ModelInfo(
        model=slug,
        author=slug.partition("/")[0],
        lab=entry.lab,
        origin_country=entry.country,
        origin_bloc=origin_bloc_of(entry.country),
        weights=entry.weights,
        params_b=entry.params_b,
        size_class=size_class_of(entry.params_b),
        reasoning="reasoning" if entry.reasoning else "non-reasoning",
        identified=True,
        hosting_country=_hosting(author),
    )
