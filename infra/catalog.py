"""Catalog tier: Glue database, the Iceberg and quarantine tables, Athena workgroup, queries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra import policies
from infra.config import Settings
from infra.iceberg import iceberg_table
from schemas.iceberg import TABLE_NAME

TRANSACTIONS_TABLE = TABLE_NAME
QUARANTINE_TABLE = "quarantine"
ATHENA_ENGINE = "Athena engine version 3"

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


class Catalog(pulumi.ComponentResource):
    """What Athena needs to query the lake: tables, a workgroup, saved queries."""

    def __init__(
        self,
        name: str,
        *,
        settings: Settings,
        bucket_name: pulumi.Output[str],
        results_bucket_name: pulumi.Output[str],
        kms_key_arn: pulumi.Output[str] | None,
        account_id: pulumi.Input[str],
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
        self.iceberg = iceberg_table(
            f"{name}-transactions",
            settings=s,
            parent=self,
            database=self.database,
            bucket_name=bucket_name,
        )
        self.transactions = self.iceberg.table

        self.quarantine = self._quarantine_table(name, location(policies.QUARANTINE))
        self.workgroup = self._workgroup(name, s, results_bucket_name, kms_key_arn, account_id)
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

    def _quarantine_table(self, name: str, quarantine: pulumi.Output[str]) -> aws.glue.CatalogTable:
        return aws.glue.CatalogTable(
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
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _workgroup(
        self,
        name: str,
        s: Settings,
        results_bucket_name: pulumi.Output[str],
        kms_key_arn: pulumi.Output[str] | None,
        account_id: pulumi.Input[str],
    ) -> aws.athena.Workgroup:
        encryption: dict[str, pulumi.Input[str]] = {"encryption_option": "SSE_S3"}
        if kms_key_arn is not None:
            encryption = {"encryption_option": "SSE_KMS", "kms_key_arn": kms_key_arn}
        return aws.athena.Workgroup(
            f"{name}-workgroup",
            name=s.name_prefix,
            description=f"Queries over the {s.stack} lake; results in their own bucket",
            configuration={
                # Users cannot override the result location, encryption or the cutoff.
                "enforce_workgroup_configuration": True,
                "publish_cloudwatch_metrics_enabled": True,
                "bytes_scanned_cutoff_per_query": s.athena_bytes_scanned_cutoff,
                "engine_version": {"selected_engine_version": ATHENA_ENGINE},
                "result_configuration": {
                    "output_location": pulumi.Output.concat("s3://", results_bucket_name, "/"),
                    "encryption_configuration": encryption,
                    # Athena refuses to write results into a same-named bucket elsewhere.
                    "expected_bucket_owner": account_id,
                },
            },
            force_destroy=s.force_destroy,
            tags=s.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
