"""The rollup-changes topic: what the store tells the share stage after it stored rows.

`<prefix>.rollup-changes` carries one small :class:`RollupChange` per partition
per flush, published once the rows it announces are in ClickHouse (so a share
stage that reads on a notice sees them). Each partition stands for a fixed set
of the share rules' evaluation keys (:func:`partition_of`: a dimension, or a
name such as ``catalog_gap``), so the worker owning a partition evaluates
exactly those, and a newer notice in a partition covers every older one.

Workers also send notices of their own ("recheck", "takeover") to evaluate a
partition again when no row arrives: when an idle source partition may let
the watermark move, and when they take a partition over.
"""

from __future__ import annotations

import zlib
from datetime import date
from typing import Final, Literal, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field

from tokenshare.schema.vocabulary import DIMENSIONS, Dimension

#: One partition per dimension: the unit the share stage spreads over workers.
CHANGE_PARTITIONS: Final[int] = len(DIMENSIONS)

#: rows: the store stored rows; recheck: the watermark may have moved with no row;
#: takeover: a worker was given the partition.
ChangeReason = Literal["rows", "recheck", "takeover"]


def partition_of(key: str, partitions: int = CHANGE_PARTITIONS) -> int:
    """The partition of an evaluation key: a dimension's by its place in the vocabulary
    (with one partition per dimension no two share one), any other key's by a stable
    hash. Every store and worker computes the same."""
    if key in DIMENSIONS:
        return DIMENSIONS.index(key) % partitions
    return zlib.crc32(key.encode()) % partitions


def dimensions_of(partition: int, partitions: int = CHANGE_PARTITIONS) -> tuple[Dimension, ...]:
    """The dimensions whose evaluation `partition` stands for."""
    return tuple(d for d in DIMENSIONS if partition_of(d, partitions) == partition)


class RollupChange(BaseModel):
    """Rows were stored, of these days (or: evaluate the partition's keys again)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: ChangeReason
    first_day: date | None = Field(default=None, description="Earliest event day stored.")
    last_day: date | None = Field(default=None, description="Latest event day stored.")
    flush: str | None = Field(
        default=None, description="The store flush announced: the same on each partition's notice."
    )

    @staticmethod
    def key_of(partition: int, partitions: int = CHANGE_PARTITIONS) -> bytes:
        """The message key: the partition's dimensions, comma-separated."""
        return ",".join(dimensions_of(partition, partitions)).encode() or b"-"

    def encode(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))

    @classmethod
    def decode(cls, value: bytes) -> Self:
        return cls.model_validate_json(value)
