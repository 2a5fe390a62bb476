"""The alert rules configuration, read from TOML.

Every rule names the dimension and measure it watches; both are checked
against the project's vocabulary (``schema.vocabulary``) when the file is
loaded, so a typo fails at start-up with the offending field named instead
of silently producing no alerts.
Unknown keys are refused for the same reason. A rule section that is absent
means "no rules of that kind".
"""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from tokenshare.schema import vocabulary
from tokenshare.schema.vocabulary import DIMENSIONS, MEASURES, WINDOW_KINDS, WindowKind

#: The shipped defaults.
DEFAULT_PATH = Path(__file__).with_name("rules.toml")


# Checked before the Literal's own check, for a message that lists every choice once.
def _known_dimension(name: Any) -> Any:
    if isinstance(name, str) and name not in DIMENSIONS:
        raise ValueError(f"unknown dimension {name!r}; expected one of: {', '.join(DIMENSIONS)}")
    return name


def _known_measure(name: Any) -> Any:
    if isinstance(name, str) and name not in MEASURES:
        raise ValueError(f"unknown measure {name!r}; expected one of: {', '.join(MEASURES)}")
    return name


Dimension = Annotated[vocabulary.Dimension, BeforeValidator(_known_dimension)]
Measure = Annotated[vocabulary.Measure, BeforeValidator(_known_measure)]
#: A dimension value as it appears in the shares, e.g. "China" or "open".
Value = Annotated[str, Field(min_length=1)]
#: A share level strictly between 0 and 1 (0 and 1 could never be crossed both ways).
Level = Annotated[float, Field(gt=0, lt=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Pair(_Strict):
    """Two values of one dimension whose crossover is always watched, in or out of the top K."""

    dimension: Dimension
    a: Value
    b: Value

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if self.a == self.b:
            raise ValueError(f"a pair needs two different values, got {self.a!r} twice")
        return self


class CrossoverRule(_Strict):
    dimensions: list[Dimension] = Field(default_factory=list)
    measure: Measure = "tokens"
    #: Pairs among the top K values of a window are watched without being listed.
    top_k: int = Field(default=3, ge=2)
    #: A lead of at least this many points confirms a crossover at once ...
    min_margin_pp: float = Field(default=1.0, ge=0)
    #: ... a smaller one once it has held for this many windows in a row.
    confirm_windows: int = Field(default=2, ge=1)
    exclude_unidentified: bool = True
    pairs: list[Pair] = Field(default_factory=list)

    @model_validator(mode="after")
    def _pairs_are_watched(self) -> Self:
        # A pair on a dimension that is not evaluated would never fire: say so.
        for pair in self.pairs:
            if pair.dimension not in self.dimensions:
                raise ValueError(
                    f"pair {pair.a!r}/{pair.b!r} is on dimension {pair.dimension!r}, "
                    f"which is not in crossover.dimensions {self.dimensions}"
                )
        return self


class ThresholdRule(_Strict):
    """One value's share crossing a fixed level, either way."""

    dimension: Dimension
    value: Value
    level: Level
    measure: Measure = "tokens"
    exclude_unidentified: bool = False


class ConcentrationRule(_Strict):
    """The top value's share, and/or the HHI (sum of squared shares, 0..1), crossing a level."""

    dimension: Dimension
    measure: Measure = "tokens"
    top1_level: Level | None = None
    hhi_level: Level | None = None
    exclude_unidentified: bool = True

    @model_validator(mode="after")
    def _has_a_level(self) -> Self:
        if self.top1_level is None and self.hhi_level is None:
            raise ValueError("set top1_level, hhi_level or both")
        return self


class JumpRule(_Strict):
    """A value's share moving by at least `points` percentage points from one window to the next."""

    dimension: Dimension
    measure: Measure = "tokens"
    points: float = Field(gt=0, le=100)
    #: Values below this share in both windows are noise, whatever they do.
    min_share: float = Field(default=0.01, ge=0, lt=1)
    exclude_unidentified: bool = True


class RankRule(_Strict):
    """The ordered top N values changing from one window to the next."""

    dimension: Dimension
    measure: Measure = "tokens"
    top_n: int = Field(default=5, ge=1)
    exclude_unidentified: bool = True


class RulesConfig(_Strict):
    #: How long after a window ends data may still arrive before the window is final.
    lateness_hours: float = Field(default=24, ge=0)
    #: A source partition with no new rows for this long stops holding the watermark back.
    idle_partition_seconds: float = Field(default=30, gt=0)
    windows: list[WindowKind] = Field(default_factory=lambda: list(WINDOW_KINDS), min_length=1)
    crossover: CrossoverRule = Field(default_factory=CrossoverRule)
    thresholds: list[ThresholdRule] = Field(default_factory=list)
    concentration: list[ConcentrationRule] = Field(default_factory=list)
    jumps: list[JumpRule] = Field(default_factory=list)
    ranks: list[RankRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct_windows(self) -> Self:
        # Listing a kind twice would evaluate it twice; harmless but surely a mistake.
        if len(set(self.windows)) != len(self.windows):
            raise ValueError(f"windows lists a kind more than once: {self.windows}")
        return self

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


def _describe(error: ValidationError) -> str:
    """One line per problem, located like ``thresholds.0.dimension``."""
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)
