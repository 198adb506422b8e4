"""Columns of the processed table: the contract's fields as stored, then derived and lineage."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import pyarrow as arrow

from schemas.instants import INSTANT_TYPE
from schemas.transaction import contract_spec


@dataclass(frozen=True)
class OutputColumn:
    """A column of `processed/`, with where it comes from."""

    name: str
    type: arrow.DataType
    description: str
    partition: bool = False


# Appended after the contract's fields. Order is the Iceberg field ids: a new column goes
# at the end, so earlier columns keep their ids.
DERIVED_COLUMNS = (
    OutputColumn("hour", arrow.int8(), "Hour of the UTC instant (0-23)."),
    OutputColumn("day_of_week", arrow.int8(), "Day of week of the UTC instant, 0 = Monday."),
    OutputColumn("source_key", arrow.string(), "Key of the raw object the row came from."),
    OutputColumn("ingested_at", INSTANT_TYPE, "When the transformer wrote the row (UTC)."),
    OutputColumn("year", arrow.int16(), "Partition: UTC year.", partition=True),
    OutputColumn("month", arrow.int8(), "Partition: UTC month (1-12).", partition=True),
    OutputColumn("day", arrow.int8(), "Partition: UTC day of month.", partition=True),
    # Lineage added with the Iceberg table.
    OutputColumn(
        "source_version",
        arrow.string(),
        "Version (S3 VersionId or ETag, or a local stamp) of the raw object the row came from.",
    ),
    OutputColumn(
        "replayed_entry_id",
        arrow.string(),
        "Quarantine entry id of a row that `quarantine replay` moved here; null otherwise.",
    ),
)


@cache
def output_columns() -> tuple[OutputColumn, ...]:
    """Columns of the processed table, the contract's fields first, then derived and lineage."""
    fields = tuple(
        OutputColumn(f.name, f.stored_type, f.description) for f in contract_spec().fields
    )
    return fields + DERIVED_COLUMNS


@cache
def partition_columns() -> tuple[str, ...]:
    """Names of the partition columns, in partition order."""
    return tuple(c.name for c in output_columns() if c.partition)


def processed_arrow_schema() -> arrow.Schema:
    """Arrow schema of the table's rows without the partition columns."""
    return arrow.schema([arrow.field(c.name, c.type) for c in output_columns() if not c.partition])
