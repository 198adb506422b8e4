"""The processed/ Iceberg table in Glue, created by `pulumi up` from the contract's schema.

`pulumi up` writes the table's first metadata file (format v2, no snapshots) and a Glue
table pointing at it, the way pyiceberg's GlueCatalog would create it, so Athena and the
functions find the table on an empty stack. From then on the writers own both: every
commit writes a new metadata file and moves the Glue table's `metadata_location`, so
the program ignores later changes to them (see `iceberg_table`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
from pyiceberg.table.metadata import TableMetadata, new_table_metadata
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER

from infra.config import Settings
from schemas.iceberg import (
    TABLE_NAME,
    TABLE_PREFIX,
    TABLE_PROPERTIES,
    glue_type,
    iceberg_partition_spec,
    iceberg_schema,
)

# A fixed creation time keeps the metadata file byte-identical between runs, so an
# unchanged program shows no diff. Commits stamp their own, later, times.
CREATED_AT_MS = 0
_UUID_NAMESPACE = uuid.UUID("6f1d2c9e-5b7a-4c1e-9a3f-2d8e4b6c0a17")


def table_location(bucket: str) -> str:
    """`s3://<bucket>/processed`, as handlers/core/table.py computes it."""
    return f"s3://{bucket}/{TABLE_PREFIX}"


def table_uuid(bucket: str, database: str) -> uuid.UUID:
    """Stable per stack: the same bucket and database always give the same table uuid."""
    return uuid.uuid5(_UUID_NAMESPACE, f"{table_location(bucket)}#{database}.{TABLE_NAME}")


def metadata_key(table_id: uuid.UUID) -> str:
    """Object key of version 0, named like pyiceberg names its metadata files."""
    return f"{TABLE_PREFIX}/metadata/00000-{table_id}.metadata.json"


def initial_metadata(bucket: str, database: str) -> TableMetadata:
    """Version 0 of the table: schema, partition spec and properties from schemas/iceberg.py."""
    metadata = new_table_metadata(
        iceberg_schema(),
        iceberg_partition_spec(),
        UNSORTED_SORT_ORDER,
        table_location(bucket),
        # new_table_metadata takes format-version out of the mapping it is given.
        dict(TABLE_PROPERTIES),
        table_uuid(bucket, database),
    )
    return metadata.model_copy(update={"last_updated_ms": CREATED_AT_MS})


def metadata_json(metadata: TableMetadata) -> str:
    """The file as pyiceberg writes it (`ToOutputFile.table_metadata`), keys in a fixed order."""
    return json.dumps(json.loads(metadata.model_dump_json(exclude_none=True)), sort_keys=True)


def glue_columns(metadata: TableMetadata) -> list[dict[str, Any]]:
    """Columns as pyiceberg's GlueCatalog records them, so a commit changes nothing else."""
    columns = []
    for field in metadata.schema().columns:
        column: dict[str, Any] = {
            "name": field.name,
            "type": glue_type(field.field_type),
            "parameters": {
                "iceberg.field.id": str(field.field_id),
                "iceberg.field.optional": str(field.optional).lower(),
                "iceberg.field.current": "true",
            },
        }
        if field.doc:
            column["comment"] = field.doc
        columns.append(column)
    return columns


def glue_parameters(metadata: TableMetadata, metadata_location: str) -> dict[str, str]:
    """What GlueCatalog sets: the Iceberg markers, then the table's properties."""
    return {
        "table_type": "ICEBERG",
        "metadata_location": metadata_location,
        **{key: str(value) for key, value in metadata.properties.items()},
    }


@dataclass(frozen=True)
class IcebergTable:
    table: aws.glue.CatalogTable
    metadata_object: aws.s3.BucketObjectv2
    metadata_location: pulumi.Output[str]


def iceberg_table(
    name: str,
    *,
    settings: Settings,
    parent: pulumi.Resource,
    database: aws.glue.CatalogDatabase,
    bucket_name: pulumi.Output[str],
) -> IcebergTable:
    """The metadata file and the Glue table; both left to the writers once they exist."""
    s = settings
    metadata = bucket_name.apply(lambda bucket: initial_metadata(bucket, s.glue_database))
    key = bucket_name.apply(lambda bucket: metadata_key(table_uuid(bucket, s.glue_database)))
    # Writers may delete version 0 once it falls out of `previous-versions-max`; a
    # later `pulumi up` must neither rewrite nor remove it, whatever the contract says
    # by then (schema changes go through the writers' schema evolution, not here).
    metadata_object = aws.s3.BucketObjectv2(
        f"{name}-metadata-v0",
        bucket=bucket_name,
        key=key,
        content=metadata.apply(metadata_json),
        content_type="application/json",
        tags=s.tags,
        opts=pulumi.ResourceOptions(
            parent=parent,
            ignore_changes=["content", "contentType"],
            protect=s.protect,
            retain_on_delete=True,
        ),
    )
    location = pulumi.Output.concat("s3://", bucket_name, "/", key)
    table = aws.glue.CatalogTable(
        name,
        name=TABLE_NAME,
        database_name=database.name,
        description="Validated transactions: Apache Iceberg (format v2), written by pyiceberg",
        table_type="EXTERNAL_TABLE",
        parameters=pulumi.Output.all(metadata, location).apply(
            lambda v: glue_parameters(v[0], v[1])
        ),
        storage_descriptor={
            "location": bucket_name.apply(table_location),
            "columns": metadata.apply(glue_columns),
        },
        # Every commit moves `metadata_location` (and `previous_metadata_location`) and
        # rewrites the columns; without ignore_changes the next `pulumi up` would point
        # the table back at version 0 and silently hide every row committed since.
        # Pulumi fills ignored inputs from its state, so a change to any other input of
        # this table must be deployed with `pulumi up --refresh` (README).
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=[metadata_object],
            ignore_changes=["parameters", "storageDescriptor"],
            protect=s.protect,
            retain_on_delete=s.protect,
        ),
    )
    return IcebergTable(table=table, metadata_object=metadata_object, metadata_location=location)
