"""The alert rules configuration, read from TOML.

Every rule names what it watches (dimension, measure or ratio, segment filter,
values); all of it is checked when the file is loaded: names against the
project's vocabulary (``schema.vocabulary``), values of catalog dimensions
against the model catalog, each with a did-you-mean, so a typo ("Chian") fails
at start-up with the offending field named instead of silently producing no
alerts. Values of request dimensions (category, provider, ...) are only known
from the data: ``unseen_values`` checks them against the stored sums.
Unknown keys are refused for the same reason. A rule section that is absent
means "no rules of that kind".

Every rule has a name (``name``, or one derived from what it watches), unique in
the file: the backtest reports by it, and digests and budgets count by it. Its
``key`` is what a partitioned evaluator splits the rules by: the dimension whose
sums it reads (``RulesConfig.evaluation_keys``, ``RulesConfig.dimensions_for``).
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from tokenshare.schema import vocabulary
from tokenshare.schema.catalog import DEFAULT_PATH as CATALOG_PATH
from tokenshare.schema.catalog import UNIDENTIFIED, Catalog, CatalogFile
from tokenshare.schema.vocabulary import (
    CATALOG_DIMENSIONS,
    DIMENSIONS,
    MEASURES,
    RATIOS,
    SEGMENT_DIMENSIONS,
    WINDOW_KINDS,
    Severity,
    WindowKind,
)

_DEFAULT_WINDOWS: tuple[WindowKind, ...] = ("iso_week",)
#: The shipped defaults.
DEFAULT_PATH = Path(__file__).with_name("rules.toml")
#: In a crossover pair, "every other value": China against the rest of the world.
REST = "rest"
#: What whole-market rules (no dimension) read: any dimension sums to all traffic.
WHOLE_MARKET_DIMENSION: vocabulary.Dimension = "weights"


def suggest(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'China'?)`` for a near miss, else the choices listed."""
    options = sorted(set(choices))
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    if not close:
        lowered = {o.lower(): o for o in options}
        close = [lowered[name.lower()]] if name.lower() in lowered else []
    if close:
        return f"did you mean {close[0]!r}?"
    shown = options if len(options) <= 12 else [*options[:12], "..."]
    return f"expected one of: {', '.join(shown)}"


def _known(kind: str, choices: tuple[str, ...]) -> Any:
    def check(name: Any) -> Any:
        if isinstance(name, str) and name not in choices:
            raise ValueError(f"unknown {kind} {name!r}; {suggest(name, choices)}")
        return name

    return BeforeValidator(check)


Dimension = Annotated[vocabulary.Dimension, _known("dimension", DIMENSIONS)]
Measure = Annotated[vocabulary.Measure, _known("measure", MEASURES)]
Ratio = Annotated[vocabulary.Ratio, _known("ratio", RATIOS)]
SegmentDimension = Annotated[
    vocabulary.SegmentDimension, _known("segment dimension", SEGMENT_DIMENSIONS)
]
Window = Annotated[WindowKind, _known("window kind", WINDOW_KINDS)]
#: A dimension value as it appears in the shares, e.g. "China" or "open".
Value = Annotated[str, Field(min_length=1)]
#: A share level strictly between 0 and 1 (0 and 1 could never be crossed both ways).
Level = Annotated[float, Field(gt=0, lt=1)]


@cache
def catalog_values() -> dict[str, frozenset[str]]:
    """Every value each catalog dimension can take, from the shipped model catalog."""
    data = CatalogFile.model_validate_json(CATALOG_PATH.read_bytes())
    catalog = Catalog(data)
    out: dict[str, set[str]] = {d: {UNIDENTIFIED} for d in CATALOG_DIMENSIONS}
    for slug in data.models:
        info = catalog.lookup(slug)
        for d in CATALOG_DIMENSIONS:
            out[d].add(str(getattr(info, d)))
    for author, entry in data.authors.items():
        out["author"].add(author)
        out["origin_country"].add(entry.country)
        out["origin_bloc"].add(catalog.lookup(f"{author}/-").origin_bloc)
    return {d: frozenset(v) for d, v in out.items()}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Rule(_Strict):
    """What every rule has: a name, a severity, its windows, a segment and a budget."""

    name: str | None = None
    severity: Severity = "warning"
    #: The window kinds this rule runs in; unset: the file's ``windows``.
    windows: list[Window] | None = None
    #: Shares within a segment: ``where = { weights = "open" }`` shares out open models only.
    where: dict[SegmentDimension, Value] = Field(default_factory=dict, max_length=1)
    #: At most this many alerts per window; the rest go into one digest. Unset: the file's.
    budget: int | None = Field(default=None, ge=1)
    #: Report the state found at the first evaluated window once (kind "baseline").
    baseline: bool = True

    @property
    def segment(self) -> str:
        """The segment's key in the day sums: "" (all traffic) or "weights=open"."""
        return "".join(f"{d}={v}" for d, v in self.where.items())

    @property
    def scope(self) -> str:
        """How an alert names the segment: "" or " [weights=open]"."""
        return f" [{self.segment}]" if self.where else ""

    def values(self) -> Iterator[tuple[str, str, str]]:
        """(field, dimension, value) of every value this rule names, for the checks."""
        for d, v in self.where.items():
            yield f"where.{d}", d, v

    def reads(self) -> set[str]:
        """Every dimension whose sums this rule reads."""
        return {self.key}

    def evaluation_keys(self) -> set[str]:
        """The evaluation keys this rule runs under (a crossover: one per dimension)."""
        return {self.key}

    def segments(self) -> set[str]:
        """The segments whose sums this rule reads ("" = all traffic)."""
        return {self.segment}

    def reads_for(self, key: str) -> set[str]:
        """The dimensions the part of this rule under `key` reads."""
        return self.reads()

    @property
    def key(self) -> str:
        raise NotImplementedError

    @property
    def label(self) -> str:
        raise NotImplementedError

    @property
    def rule_name(self) -> str:
        return self.name or self.label


class _SharesRule(_Rule):
    """A rule on the shares of one dimension's values: it reads that dimension's sums."""

    dimension: Dimension

    @property
    def key(self) -> str:
        return self.dimension


class _ValueOrSegmentRule(_Rule):
    """A rule on one value (``dimension`` and ``value``) or, with neither, on the whole
    segment. The subclasses declare the two fields, each where it stands in their
    order of fields (and so of validation errors); what reads them is here."""

    if TYPE_CHECKING:
        dimension: Dimension | None
        value: Value | None

    def _check_value_and_dimension(self) -> None:
        if (self.dimension is None) != (self.value is None):
            raise ValueError("set dimension and value together (or neither: the whole segment)")

    def values(self) -> Iterator[tuple[str, str, str]]:
        yield from super().values()
        if self.dimension is not None and self.value is not None:
            yield "value", self.dimension, self.value

    @property
    def series_dimension(self) -> vocabulary.Dimension:
        """Whose sums it reads: its dimension's, or for the whole segment any (every
        dimension sums to all traffic)."""
        return self.dimension or WHOLE_MARKET_DIMENSION

    @property
    def key(self) -> str:
        return self.series_dimension

    @property
    def watched(self) -> str:
        """What the label names: "author=anthropic", or "all"."""
        return f"{self.dimension}={self.value}" if self.value else "all"


class Pair(_Strict):
    """Two values of one dimension whose crossover is always watched, in or out of the top K.

    ``b = "rest"`` stands for every other value together."""

    dimension: Dimension
    a: Value
    b: Value

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if self.a == self.b:
            raise ValueError(f"a pair needs two different values, got {self.a!r} twice")
        if self.a == REST:
            raise ValueError(f"{REST!r} (every other value) can only be b")
        return self


class CrossoverRule(_Rule):
    dimensions: list[Dimension] = Field(default_factory=list)
    measure: Measure = "tokens"
    #: Pairs among the top K values of a window are watched without being listed (0: none).
    top_k: int = Field(default=3, ge=0)
    #: A lead of at least this many points confirms a crossover at once ...
    min_margin_pp: float = Field(default=1.0, ge=0)
    #: ... a smaller one once it has held for this many windows in a row.
    confirm_windows: int = Field(default=2, ge=1)
    exclude_unidentified: bool = True
    pairs: list[Pair] = Field(default_factory=list)
    #: Crossovers have no level, so there is no baseline to report.
    baseline: bool = False

    @model_validator(mode="after")
    def _pairs_are_watched(self) -> Self:
        if self.top_k == 1:
            raise ValueError("top_k must be 0 (listed pairs only) or at least 2")
        # A pair on a dimension that is not evaluated would never fire: say so.
        for pair in self.pairs:
            if pair.dimension not in self.dimensions:
                raise ValueError(
                    f"pair {pair.a!r}/{pair.b!r} is on dimension {pair.dimension!r}, "
                    f"which is not in crossover.dimensions {self.dimensions}"
                )
        return self

    def values(self) -> Iterator[tuple[str, str, str]]:
        yield from super().values()
        for i, p in enumerate(self.pairs):
            yield f"pairs.{i}.a", p.dimension, p.a
            if p.b != REST:
                yield f"pairs.{i}.b", p.dimension, p.b

    @property
    def key(self) -> str:
        return "+".join(self.dimensions)

    def reads(self) -> set[str]:
        return set(self.dimensions)

    def evaluation_keys(self) -> set[str]:
        return set(self.dimensions)

    def reads_for(self, key: str) -> set[str]:
        return {key}

    @property
    def label(self) -> str:
        return f"crossover {'/'.join(self.dimensions)} {self.measure}{self.scope}"


class ThresholdRule(_SharesRule):
    """One value's share crossing a level, with hysteresis: it is "above" from the first
    window at or over `level` until a window below `level - margin_pp` points."""

    value: Value
    level: Level
    measure: Measure = "tokens"
    margin_pp: float = Field(default=2.0, ge=0, lt=100)
    exclude_unidentified: bool = False

    def values(self) -> Iterator[tuple[str, str, str]]:
        yield from super().values()
        yield "value", self.dimension, self.value

    @property
    def label(self) -> str:
        return f"{self.dimension}={self.value} {self.measure} {level_label(self.level)}{self.scope}"


class ConcentrationRule(_SharesRule):
    """The top value's share, and/or the HHI (sum of squared shares, 0..1), crossing a
    level, with the same hysteresis as thresholds."""

    measure: Measure = "tokens"
    top1_level: Level | None = None
    hhi_level: Level | None = None
    margin_pp: float = Field(default=2.0, ge=0, lt=100)
    exclude_unidentified: bool = True

    @model_validator(mode="after")
    def _has_a_level(self) -> Self:
        if self.top1_level is None and self.hhi_level is None:
            raise ValueError("set top1_level, hhi_level or both")
        return self

    @property
    def label(self) -> str:
        return f"concentration {self.dimension} {self.measure}{self.scope}"


class JumpRule(_SharesRule):
    """Shares moving by at least `points` percentage points from one window to the next:
    one alert per window naming every value that moved (a shift between two values is
    one movement, not one alert for each side)."""

    measure: Measure = "tokens"
    points: float = Field(gt=0, le=100)
    #: Values below this share in both windows are noise, whatever they do.
    min_share: float = Field(default=0.01, ge=0, lt=1)
    exclude_unidentified: bool = True
    baseline: bool = False

    @property
    def label(self) -> str:
        return f"jump {self.dimension} {self.measure} {self.points:g}pp{self.scope}"


class RankRule(_SharesRule):
    """The ordered top N values changing from one window to the next."""

    measure: Measure = "tokens"
    top_n: int = Field(default=5, ge=1)
    exclude_unidentified: bool = True
    baseline: bool = False

    @property
    def label(self) -> str:
        return f"rank {self.dimension} top{self.top_n}{self.scope}"


class RatioRule(_ValueOrSegmentRule):
    """A ratio (``schema.vocabulary.RATIOS``) of one value, or of the whole segment when no
    value is given, passing `above` or falling under `below`; hysteresis `margin_pct`
    percent of the level. ``spend_over_token_share`` needs a value."""

    ratio: Ratio
    dimension: Dimension | None = None
    value: Value | None = None
    above: float | None = Field(default=None, gt=0)
    below: float | None = Field(default=None, gt=0)
    margin_pct: float = Field(default=5.0, ge=0, lt=100)
    exclude_unidentified: bool = False

    @model_validator(mode="after")
    def _well_formed(self) -> Self:
        if self.above is None and self.below is None:
            raise ValueError("set above, below or both")
        self._check_value_and_dimension()
        if self.ratio == "spend_over_token_share" and self.value is None:
            raise ValueError("spend_over_token_share compares one value's shares: set a value")
        return self

    @property
    def label(self) -> str:
        return f"ratio {self.ratio} {self.watched}{self.scope}"


class VolumeRule(_ValueOrSegmentRule):
    """A measure's total (of one value, or the whole segment): passing `above`, falling
    under `below` (absolute), or changing by `rise_pct` / `drop_pct` percent against the
    previous window. Changes compare complete windows only, never a partly covered one."""

    measure: Measure = "tokens"
    dimension: Dimension | None = None
    value: Value | None = None
    above: float | None = Field(default=None, gt=0)
    below: float | None = Field(default=None, gt=0)
    rise_pct: float | None = Field(default=None, gt=0)
    drop_pct: float | None = Field(default=None, gt=0, lt=100)
    margin_pct: float = Field(default=5.0, ge=0, lt=100)
    baseline: bool = False

    @model_validator(mode="after")
    def _well_formed(self) -> Self:
        if all(x is None for x in (self.above, self.below, self.rise_pct, self.drop_pct)):
            raise ValueError("set above, below, rise_pct or drop_pct")
        self._check_value_and_dimension()
        return self

    @property
    def label(self) -> str:
        return f"volume {self.measure} {self.watched}{self.scope}"


class CatalogGapRule(_Rule):
    """Traffic the catalog cannot place passing a level: models missing from the catalog
    (`level`, share of the measure), and/or models of labs it does not know at all
    (`lab_level`). One alert names the top unknown slugs and labs with their shares; it
    re-arms once the share is back under the level by `margin_pp` points."""

    measure: Measure = "tokens"
    level: Level | None = 0.05
    lab_level: Level | None = None
    top: int = Field(default=5, ge=1)
    margin_pp: float = Field(default=1.0, ge=0, lt=100)
    severity: Severity = "warning"

    @model_validator(mode="after")
    def _has_a_level(self) -> Self:
        if self.level is None and self.lab_level is None:
            raise ValueError("set level, lab_level or both")
        if self.where:
            raise ValueError("a catalog gap is about all traffic: where is not allowed")
        return self

    @property
    def key(self) -> str:
        return "catalog_gap"

    def reads(self) -> set[str]:
        return {"weights", "origin_bloc", "model", "author"}

    def segments(self) -> set[str]:
        return {"", f"weights={UNIDENTIFIED}", f"origin_bloc={UNIDENTIFIED}"}

    @property
    def label(self) -> str:
        return "catalog gap"


AnyRule = (
    CrossoverRule
    | ThresholdRule
    | ConcentrationRule
    | JumpRule
    | RankRule
    | RatioRule
    | VolumeRule
    | CatalogGapRule
)


def _one_or_many(value: Any) -> Any:
    """``[crossover]`` (one table) or ``[[crossover]]`` (several): always a list."""
    return [value] if isinstance(value, dict) else value


class RulesConfig(_Strict):
    #: How long after a window ends data may still arrive before the window is final.
    lateness_hours: float = Field(default=24, ge=0)
    #: A source partition with no new rows for this long stops holding the watermark back.
    idle_partition_seconds: float = Field(default=30, gt=0)
    windows: list[Window] = Field(default_factory=lambda: list(_DEFAULT_WINDOWS), min_length=1)
    #: Alerts per rule and window before the rest go into a digest (a rule may set its own).
    budget: int = Field(default=3, ge=1)
    crossover: Annotated[list[CrossoverRule], BeforeValidator(_one_or_many)] = Field(
        default_factory=list
    )
    thresholds: list[ThresholdRule] = Field(default_factory=list)
    concentration: list[ConcentrationRule] = Field(default_factory=list)
    jumps: list[JumpRule] = Field(default_factory=list)
    ranks: list[RankRule] = Field(default_factory=list)
    ratios: list[RatioRule] = Field(default_factory=list)
    volumes: list[VolumeRule] = Field(default_factory=list)
    catalog_gap: list[CatalogGapRule] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _catalog_gap_table(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("catalog_gap"), dict):
            data = {**data, "catalog_gap": [data["catalog_gap"]]}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        # Listing a kind twice would evaluate it twice; harmless but surely a mistake.
        if len(set(self.windows)) != len(self.windows):
            raise ValueError(f"windows lists a kind more than once: {self.windows}")
        problems = list(self._value_problems())
        names: dict[str, str] = {}
        for where, rule in self.located():
            other = names.setdefault(rule.rule_name, where)
            if other != where:
                problems.append(
                    f"{where}: rule name {rule.rule_name!r} is also {other}'s; set name"
                )
            for d in rule.where:
                if getattr(rule, "dimension", None) == d:
                    problems.append(f"{where}.where: filters on {d}, the dimension it shares")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _value_problems(self) -> Iterator[str]:
        known = catalog_values()
        for where, rule in self.located():
            for field, dimension, value in rule.values():
                choices = known.get(dimension)
                if choices is not None and value not in choices:
                    yield (
                        f"{where}.{field}: {value!r} is not a known {dimension} value; "
                        f"{suggest(value, choices)}"
                    )

    def located(self) -> Iterator[tuple[str, AnyRule]]:
        """Every rule with where it sits in the file (``thresholds.0``)."""
        sections: tuple[tuple[str, list[Any]], ...] = (
            ("crossover", self.crossover),
            ("thresholds", self.thresholds),
            ("concentration", self.concentration),
            ("jumps", self.jumps),
            ("ranks", self.ranks),
            ("ratios", self.ratios),
            ("volumes", self.volumes),
            ("catalog_gap", self.catalog_gap),
        )
        for section, rules in sections:
            for i, rule in enumerate(rules):
                yield f"{section}.{i}", rule

    def all_rules(self) -> list[AnyRule]:
        return [rule for _, rule in self.located()]

    def windows_of(self, rule: AnyRule) -> list[WindowKind]:
        return list(rule.windows) if rule.windows is not None else list(self.windows)

    def budget_of(self, rule: AnyRule) -> int:
        return rule.budget if rule.budget is not None else self.budget

    def window_kinds(self) -> list[WindowKind]:
        """Every window kind evaluated: the file's ``windows``, then any a rule adds."""
        kinds = list(self.windows)
        for rule in self.all_rules():
            kinds += [k for k in self.windows_of(rule) if k not in kinds]
        return kinds

    def evaluation_keys(self) -> list[str]:
        """The evaluation keys, in a stable order: one evaluator may own each."""
        return sorted({k for rule in self.all_rules() for k in rule.evaluation_keys()})

    def keys(self) -> list[str]:
        """The evaluation keys (the same as ``evaluation_keys``)."""
        return self.evaluation_keys()

    def dimensions_for(self, keys: Iterable[str] | None = None) -> set[str]:
        """The dimensions whose day sums the rules of `keys` (None: all) read."""
        wanted = None if keys is None else set(keys)
        return {
            d
            for rule in self.all_rules()
            for k in rule.evaluation_keys()
            if wanted is None or k in wanted
            for d in rule.reads_for(k)
        }

    def segments_for(self, keys: Iterable[str] | None = None) -> set[str]:
        """The segments ("" = all traffic) the rules of `keys` (None: all) read."""
        wanted = None if keys is None else set(keys)
        out = {""}
        for rule in self.all_rules():
            if wanted is None or rule.evaluation_keys() & wanted:
                out |= rule.segments()
        return out

    @property
    def lateness(self) -> timedelta:
        return timedelta(hours=self.lateness_hours)


class RulesConfigError(ValueError):
    """A rules file that cannot be read, parsed or validated; the message names the field."""


def load_rules(path: Path | None = None) -> RulesConfig:
    """The rules in `path` (TOML), or the shipped defaults when `path` is None."""
    path = DEFAULT_PATH if path is None else path
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise RulesConfigError(f"{path}: cannot read rules file: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise RulesConfigError(f"{path}: not valid TOML: {e}") from e
    try:
        return RulesConfig.model_validate(data)
    except ValidationError as e:
        raise RulesConfigError(f"{path}: invalid rules configuration\n{_describe(e)}") from e


def unseen_values(cfg: RulesConfig, seen: Mapping[str, Iterable[str]]) -> list[str]:
    """Values rules name that the data (`seen`: dimension -> values) never had, each with
    a did-you-mean: a rule on one of them cannot fire (yet)."""
    problems = []
    for where, rule in cfg.located():
        for field, dimension, value in rule.values():
            values = set(seen.get(dimension, ()))
            if values and value not in values:
                problems.append(
                    f"{where}.{field}: no {dimension} {value!r} in the data; "
                    f"{suggest(value, values)}"
                )
    return problems


def _describe(error: ValidationError) -> str:
    """One line per problem, located like ``thresholds.0.dimension``."""
    lines: list[str] = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key"
        if where == "(top level)" and problem["type"] == "value_error":
            # Checks across the file (values, names) locate their own problems.
            lines.extend(f"  {part}" for part in message.splitlines())
            continue
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def level_label(level: float) -> str:
    """0.3 -> "30%", 0.255 -> "25.5%": whole percents as usual, but two close levels
    never print (and so never make an alert subject or a rule name) alike."""
    return f"{level * 100:g}%"
