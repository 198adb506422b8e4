"""The processed table as Apache Iceberg: schema, partition spec and properties."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import pyarrow as arrow

from schemas.columns import output_columns, partition_columns

# pyiceberg is imported where it is used: the names below are what the rest of the code
# needs from this module, and a transform imports pyiceberg (~0.1 s) while its first
# chunks decode rather than before.
if TYPE_CHECKING:
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.types import IcebergType

NAMESPACE = "ecommerce"
TABLE_NAME = "transactions"
# The table's location relative to the lake root (or bucket): data and metadata live here.
TABLE_PREFIX = "processed"
FORMAT_VERSION = 2
# Partition field ids start at 1000 by Iceberg convention.
_FIRST_PARTITION_FIELD_ID = 1000

TABLE_PROPERTIES: dict[str, str] = {
    "format-version": str(FORMAT_VERSION),
    "write.format.default": "parquet",
    "write.parquet.compression-codec": "zstd",
    # Compaction's target; the maintenance job may override it per run.
    "write.target-file-size-bytes": str(128 * 1024 * 1024),
    # Athena (engine v3) reads these; keeps the metadata folder from growing forever.
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "100",
    # Whole-string bounds for the lineage columns (the default truncates to 16 characters,
    # which all keys under raw/dt=… share): a key's delete then prunes to its own files.
    "write.metadata.metrics.column.source_key": "full",
    "write.metadata.metrics.column.source_version": "full",
}


def iceberg_type(data_type: arrow.DataType) -> IcebergType:
    """Iceberg type of an Arrow output type: Iceberg has no 8/16-bit ints, so they widen."""
    from pyiceberg.types import DecimalType, IntegerType, LongType, StringType, TimestamptzType

    if arrow.types.is_decimal(data_type):
        return DecimalType(data_type.precision, data_type.scale)
    if arrow.types.is_timestamp(data_type):
        if data_type.tz is None or data_type.unit != "us":
            raise ValueError(f"instants must be UTC microseconds, got {data_type}")
        return TimestamptzType()
    if arrow.types.is_string(data_type):
        return StringType()
    if data_type == arrow.int64():
        return LongType()
    if data_type in (arrow.int8(), arrow.int16(), arrow.int32()):
        return IntegerType()
    raise ValueError(f"no Iceberg type for Arrow type {data_type}")


def glue_type(kind: IcebergType) -> str:
    """Hive type name Glue records for an Iceberg column, with pyiceberg's own mapping."""
    # Imported here: the Glue catalog module costs ~0.7 s of imports (boto3 clients), and
    # only the docs and the Pulumi program need the mapping, never a Lambda cold start.
    from pyiceberg.catalog.glue import GLUE_PRIMITIVE_TYPES
    from pyiceberg.types import DecimalType

    if isinstance(kind, DecimalType):
        return f"decimal({kind.precision},{kind.scale})"
    if type(kind) not in GLUE_PRIMITIVE_TYPES:
        raise ValueError(f"no Glue type for {kind}")
    return GLUE_PRIMITIVE_TYPES[type(kind)]


@cache
def iceberg_schema() -> Schema:
    """The table schema: model fields, derived and lineage columns, then the partition columns.

    Field ids follow the contract's column order and must never be reused or reordered
    for an existing column: a new column gets the next id.
    """
    from pyiceberg.schema import Schema
    from pyiceberg.types import NestedField

    fields = [
        NestedField(
            field_id=n,
            name=column.name,
            field_type=iceberg_type(column.type),
            required=False,
            doc=column.description or None,
        )
        for n, column in enumerate(output_columns(), start=1)
    ]
    return Schema(*fields)


@cache
def iceberg_partition_spec() -> PartitionSpec:
    """Identity partitions on year, month and day, so `WHERE year = … AND month = …` prunes."""
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import IdentityTransform

    schema = iceberg_schema()
    return PartitionSpec(
        *(
            PartitionField(
                source_id=schema.find_field(name).field_id,
                field_id=_FIRST_PARTITION_FIELD_ID + n,
                transform=IdentityTransform(),
                name=name,
            )
            for n, name in enumerate(partition_columns())
        )
    )


@cache
def iceberg_arrow_schema() -> arrow.Schema:
    """Arrow schema of the table's data files (what pyiceberg reads back)."""
    return iceberg_schema().as_arrow()
