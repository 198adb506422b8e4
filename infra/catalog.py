"""Catalog tier: Glue database and tables, partition discovery, Athena workgroup and queries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

import schemas
from infra import policies
from infra.config import Settings

TRANSACTIONS_TABLE = "transactions"
QUARANTINE_TABLE = "quarantine"
ATHENA_ENGINE = "Athena engine version 3"

_PARQUET = {
    "input_format": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "output_format": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "ser_de_info": {
        "serialization_library": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
        "parameters": {"serialization.format": "1"},
    },
}
_JSON_LINES = {
    "input_format": "org.apache.hadoop.mapred.TextInputFormat",
    "output_format": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
    "ser_de_info": {
        "serialization_library": "org.openx.data.jsonserde.JsonSerDe",
        # A truncated line must not fail the whole review query.
        "parameters": {"ignore.malformed.json": "true"},
    },
}

# One quarantine entry per bad record (the transformer's contract). `record` is a
# string: the OpenX SerDe hands a nested object back as its JSON text, and raw text
# that never parsed stays text. `value` likewise, whatever JSON type it had.
QUARANTINE_COLUMNS: tuple[dict[str, str], ...] = (
    {"name": "entry_id", "type": "string", "comment": "Stable id of this quarantine entry."},
    {"name": "record", "type": "string", "comment": "The bad record as JSON, or raw text."},
    {"name": "record_is_raw_text", "type": "boolean", "comment": "True if record never parsed."},
    {
        "name": "errors",
        "type": "array<struct<column:string,check:string,value:string>>",
        "comment": "Each failed check: column (null for the whole record), check, value.",
    },
    {"name": "source_key", "type": "string", "comment": "Raw object the record came from."},
    {"name": "source_version", "type": "string", "comment": "Version of that raw object."},
    {"name": "line", "type": "bigint", "comment": "Line in the raw file, if line-based."},
    {"name": "record_index", "type": "bigint", "comment": "Position of the record in the file."},
    {"name": "quarantined_at", "type": "string", "comment": "When it was quarantined (ISO)."},
    {"name": "schema_version", "type": "string", "comment": "Contract version that judged it."},
)


@dataclass(frozen=True)
class NamedQuerySource:
    """One `.sql` file deployed as an Athena named query."""

    name: str
    description: str
    sql: str


def query_sources(root: Path) -> list[NamedQuerySource]:
    """`queries/*.sql` (shared with the local DuckDB CLI) and the Athena-only `queries/athena/`."""
    paths = sorted((root / "queries").glob("*.sql")) + sorted(
        (root / "queries" / "athena").glob("*.sql")
    )
    sources = []
    for path in paths:
        sql = path.read_text(encoding="utf-8").strip()
        if not sql:
            continue
        comments = [line[2:].strip() for line in sql.splitlines() if line.startswith("--")]
        sources.append(
            NamedQuerySource(
                name=path.stem,
                # Athena caps a named query description at 1024 characters.
                description=(comments[0] if comments else path.stem)[:1024],
                sql=sql,
            )
        )
    return sources


def projection_parameters(s: Settings, location: str) -> dict[str, str]:
    """Athena partition projection over `year=YYYY/month=M/day=D` (no zero padding)."""
    first, last = s.projection_years
    return {
        "projection.enabled": "true",
        "projection.year.type": "integer",
        "projection.year.range": f"{first},{last}",
        "projection.month.type": "integer",
        "projection.month.range": "1,12",
        "projection.day.type": "integer",
        "projection.day.range": "1,31",
        # Athena substitutes ${year} etc.; the braces are literal here.
        "storage.location.template": location + "year=${year}/month=${month}/day=${day}/",
    }


def quarantine_projection(location: str) -> dict[str, str]:
    """Date projection over `dt=YYYY-MM-DD`: no crawler needed in any stack."""
    return {
        "projection.enabled": "true",
        "projection.dt.type": "date",
        "projection.dt.format": "yyyy-MM-dd",
        "projection.dt.range": "2020-01-01,NOW",
        "projection.dt.interval": "1",
        "projection.dt.interval.unit": "DAYS",
        "storage.location.template": location + "dt=${dt}/",
    }


def crawler_configuration() -> str:
    """Partitions only: new ones inherit the table's schema, which is never rewritten."""
    return json.dumps(
        {
            "Version": 1.0,
            "CrawlerOutput": {"Partitions": {"AddOrUpdateBehavior": "InheritFromTable"}},
            "Grouping": {"TableGroupingPolicy": "CombineCompatibleSchemas"},
        }
    )


class Catalog(pulumi.ComponentResource):
    """What Athena needs to query the lake: tables, partitions, a workgroup, saved queries."""

    def __init__(
        self,
        name: str,
        *,
        settings: Settings,
        partition: pulumi.Input[str],
        account_id: pulumi.Input[str],
        bucket_name: pulumi.Output[str],
        bucket_arn: pulumi.Output[str],
        kms_key_arn: pulumi.Output[str] | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("ecommerce:infra:Catalog", name, None, opts)
        s = settings
        child = pulumi.ResourceOptions(parent=self)
        keep = pulumi.ResourceOptions(parent=self, protect=s.protect, retain_on_delete=s.protect)

        def location(prefix: str) -> pulumi.Output[str]:
            return pulumi.Output.concat("s3://", bucket_name, "/", prefix)

        self.database = aws.glue.CatalogDatabase(
            f"{name}-database",
            name=s.glue_database,
            description=f"E-commerce pipeline tables of stack {s.stack}",
            tags=s.tags,
            opts=keep,
        )

        processed = location(policies.PROCESSED)
        table_parameters: pulumi.Input[dict[str, str]] = {
            "classification": "parquet",
            "EXTERNAL": "TRUE",
            "schema_version": schemas.SCHEMA_VERSION,
        }
        if s.partition_discovery == "projection":
            table_parameters = processed.apply(
                lambda loc: {
                    "classification": "parquet",
                    "EXTERNAL": "TRUE",
                    "schema_version": schemas.SCHEMA_VERSION,
                    **projection_parameters(s, loc),
                }
            )
        self.transactions = aws.glue.CatalogTable(
            f"{name}-transactions",
            name=TRANSACTIONS_TABLE,
            database_name=self.database.name,
            description="Validated transactions (processed/), one Parquet file per batch chunk",
            table_type="EXTERNAL_TABLE",
            parameters=table_parameters,
            # Columns come from the pandera contract: the table cannot drift from it.
            storage_descriptor={
                "location": processed,
                "columns": schemas.glue_columns(),
                **_PARQUET,
            },
            partition_keys=schemas.glue_partition_keys(),
            opts=child,
        )

        quarantine = location(policies.QUARANTINE)
        self.quarantine = aws.glue.CatalogTable(
            f"{name}-quarantine",
            name=QUARANTINE_TABLE,
            database_name=self.database.name,
            description="Records the contract rejected (quarantine/), one JSON line each",
            table_type="EXTERNAL_TABLE",
            parameters=quarantine.apply(
                lambda loc: {
                    "classification": "json",
                    "EXTERNAL": "TRUE",
                    **quarantine_projection(loc),
                }
            ),
            storage_descriptor={
                "location": quarantine,
                "columns": [dict(column) for column in QUARANTINE_COLUMNS],
                **_JSON_LINES,
            },
            partition_keys=[
                {"name": "dt", "type": "string", "comment": "UTC day the record was quarantined"}
            ],
            opts=child,
        )

        self.crawler = None
        if s.partition_discovery == "crawler":
            self.crawler = self._crawler(
                name, s, partition, account_id, bucket_arn, kms_key_arn, child
            )

        encryption: dict[str, pulumi.Input[str]] = {"encryption_option": "SSE_S3"}
        if kms_key_arn is not None:
            encryption = {"encryption_option": "SSE_KMS", "kms_key_arn": kms_key_arn}
        self.workgroup = aws.athena.Workgroup(
            f"{name}-workgroup",
            name=s.name_prefix,
            description=f"Queries over the {s.stack} lake; results under athena-results/",
            configuration={
                # Users cannot override the result location, encryption or the cutoff.
                "enforce_workgroup_configuration": True,
                "publish_cloudwatch_metrics_enabled": True,
                "bytes_scanned_cutoff_per_query": s.athena_bytes_scanned_cutoff,
                "engine_version": {"selected_engine_version": ATHENA_ENGINE},
                "result_configuration": {
                    "output_location": location(policies.ATHENA_RESULTS),
                    "encryption_configuration": encryption,
                },
            },
            force_destroy=s.force_destroy,
            tags=s.tags,
            opts=child,
        )

        self.named_queries = [
            aws.athena.NamedQuery(
                f"{name}-query-{source.name}",
                name=source.name,
                description=source.description,
                database=self.database.name,
                workgroup=self.workgroup.name,
                query=source.sql,
                opts=child,
            )
            for source in query_sources(s.root)
        ]
        self.register_outputs(
            {
                "database": self.database.name,
                "tables": [self.transactions.name, self.quarantine.name],
                "workgroup": self.workgroup.name,
            }
        )

    def _crawler(
        self,
        name: str,
        s: Settings,
        partition: pulumi.Input[str],
        account_id: pulumi.Input[str],
        bucket_arn: pulumi.Output[str],
        kms_key_arn: pulumi.Output[str] | None,
        child: pulumi.ResourceOptions,
    ) -> aws.glue.Crawler:
        role = aws.iam.Role(
            f"{name}-crawler-role",
            description=f"Glue crawler adding partitions to {s.glue_database}.transactions",
            assume_role_policy=json.dumps(policies.assume_role("glue.amazonaws.com")),
            tags=s.tags,
            opts=child,
        )
        inputs = [partition, account_id, self.database.name, self.transactions.name, bucket_arn]
        if kms_key_arn is not None:
            inputs.append(kms_key_arn)
        role_policy = aws.iam.RolePolicy(
            f"{name}-crawler-policy",
            role=role.id,
            policy=pulumi.Output.all(*inputs).apply(
                lambda v: json.dumps(
                    policies.crawler_policy(
                        partition=v[0],
                        region=s.region,
                        account_id=v[1],
                        database=v[2],
                        table=v[3],
                        bucket_arn=v[4],
                        kms_key_arn=v[5] if len(v) > 5 else None,
                    )
                )
            ),
            opts=child,
        )
        return aws.glue.Crawler(
            f"{name}-crawler",
            name=f"{s.name_prefix}-transactions-partitions",
            description="Adds new processed/ partitions daily; never changes the schema",
            role=role.arn,
            database_name=self.database.name,
            schedule=s.crawler_schedule,
            catalog_targets=[
                {"database_name": self.database.name, "tables": [self.transactions.name]}
            ],
            # Catalog targets require LOG for deletes; LOG for updates keeps the
            # contract-generated columns authoritative.
            schema_change_policy={"update_behavior": "LOG", "delete_behavior": "LOG"},
            configuration=crawler_configuration(),
            tags=s.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role_policy]),
        )
