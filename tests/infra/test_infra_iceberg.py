"""The Iceberg table and its maintenance, per stack, under mocks: what `pulumi up` creates."""

from __future__ import annotations

import json
from typing import Any

import pytest
from infra_view import (
    BUCKET_OBJECT,
    FUNCTION,
    NAMED_QUERY,
    PERMISSION,
    ROLE_POLICY,
    RULE,
    TABLE,
    TARGET,
    View,
    as_list,
    statements,
)
from pyiceberg.catalog.glue import _to_columns
from pyiceberg.table.metadata import TableMetadataUtil

from infra.iceberg import initial_metadata, metadata_json, table_uuid
from schemas.iceberg import TABLE_PROPERTIES, iceberg_partition_spec, iceberg_schema

STACKS = ("dev", "prod")


@pytest.fixture(scope="module", params=STACKS)
def view(request: pytest.FixtureRequest, stack_records: dict[str, Any]) -> View:
    return View(stack_records[request.param])


def metadata_object(view: View) -> dict[str, Any]:
    return view.one(BUCKET_OBJECT, "-transactions-metadata-v0")


def test_metadata_v0_holds_the_contracts_schema_and_partition_spec(view: View) -> None:
    obj = metadata_object(view)["inputs"]
    database = f"ecommerce_{view.stack}"
    table_id = table_uuid(view.bucket_name(), database)
    assert obj["bucket"] == view.bucket_name()
    assert obj["key"] == f"processed/metadata/00000-{table_id}.metadata.json"
    assert obj["contentType"] == "application/json"
    metadata = TableMetadataUtil.parse_raw(obj["content"])
    assert metadata.format_version == 2
    assert metadata.table_uuid == table_id
    assert metadata.location == f"s3://{view.bucket_name()}/processed"
    assert metadata.schema() == iceberg_schema()
    assert metadata.spec() == iceberg_partition_spec()
    assert [f.name for f in metadata.spec().fields] == ["year", "month", "day"]
    assert metadata.snapshots == [] and metadata.current_snapshot_id is None
    expected = {k: v for k, v in TABLE_PROPERTIES.items() if k != "format-version"}
    assert metadata.properties == expected
    assert metadata.properties["write.parquet.compression-codec"] == "zstd"


def test_metadata_is_deterministic_so_an_unchanged_program_shows_no_diff(view: View) -> None:
    content = metadata_object(view)["inputs"]["content"]
    again = metadata_json(initial_metadata(view.bucket_name(), f"ecommerce_{view.stack}"))
    assert content == again
    assert table_uuid("a", "db") == table_uuid("a", "db") != table_uuid("b", "db")


def test_glue_table_is_an_iceberg_table_as_pyiceberg_registers_it(view: View) -> None:
    table = view.one(TABLE, "-catalog-transactions")
    inputs = table["inputs"]
    obj = metadata_object(view)["inputs"]
    location = f"s3://{view.bucket_name()}/{obj['key']}"
    assert inputs["name"] == "transactions"
    assert inputs["databaseName"] == f"ecommerce_{view.stack}"
    assert inputs["tableType"] == "EXTERNAL_TABLE"
    assert inputs["parameters"]["table_type"] == "ICEBERG"
    assert inputs["parameters"]["metadata_location"] == location
    assert "partitionKeys" not in inputs  # Iceberg partitions live in its metadata
    assert not [k for k in inputs["parameters"] if k.startswith("projection.")]
    sd = inputs["storageDescriptor"]
    assert sd["location"] == f"s3://{view.bucket_name()}/processed"
    # pyiceberg's own GlueCatalog column builder is the oracle.
    metadata = TableMetadataUtil.parse_raw(obj["content"])
    oracle = [
        {
            "name": c["Name"],
            "type": c["Type"],
            "parameters": c["Parameters"],
            **({"comment": c["Comment"]} if "Comment" in c else {}),
        }
        for c in _to_columns(metadata)
    ]
    assert sd["columns"] == oracle
    # Every column of the contract flows through, lineage included, in order.
    assert [c["name"] for c in sd["columns"]] == [f.name for f in iceberg_schema().fields]
    types = {c["name"]: c["type"] for c in sd["columns"]}
    assert types["price"].startswith("decimal(") and types["timestamp"] == "timestamp"
    assert metadata_object(view)["urn"] in table["dependsOn"]


def test_writers_own_the_table_after_creation(view: View) -> None:
    """A later `pulumi up` must not roll `metadata_location` back to version 0."""
    table = view.one(TABLE, "-catalog-transactions")
    assert table["ignoreChanges"] == ["parameters", "storageDescriptor"]
    obj = metadata_object(view)
    assert set(obj["ignoreChanges"]) >= {"content"}
    assert obj["retainOnDelete"] is True
    protected = view.stack == "prod"
    assert table["protect"] is protected and table["retainOnDelete"] is protected
    assert obj["protect"] is protected


def test_no_crawler_and_no_projection_for_processed(view: View) -> None:
    assert view.all("aws:glue/crawler:Crawler") == []
    assert not [r for r in view.policies() if "crawler" in r[0]]


def test_optimize_and_vacuum_are_named_queries(view: View) -> None:
    queries = {q["inputs"]["name"]: q["inputs"] for q in view.all(NAMED_QUERY)}
    optimize = queries["optimize_transactions"]
    assert "OPTIMIZE transactions REWRITE DATA USING BIN_PACK" in optimize["query"]
    assert "VACUUM transactions" in queries["vacuum_transactions"]["query"]
    for query in (optimize, queries["vacuum_transactions"]):
        assert query["database"] == f"ecommerce_{view.stack}"


# -- maintenance -----------------------------------------------------------------------


def test_maintenance_runs_on_its_configured_schedule(view: View) -> None:
    settings = view.cfg("ecommerce:maintenance")
    rule = view.one(RULE, "-maintenance-rule")
    assert rule["inputs"]["scheduleExpression"] == settings["schedule"]
    assert rule["inputs"]["state"] == ("ENABLED" if settings["enabled"] else "DISABLED")
    fn = view.one(FUNCTION, "-maintenance")
    assert fn["inputs"]["handler"] == "handlers.maintenance.handler"
    target = view.inputs(TARGET, "-maintenance-target")
    assert target["arn"] == fn["outputs"]["arn"]
    assert target["rule"] == rule["inputs"]["name"]
    allow = view.inputs(PERMISSION, "-maintenance-invoke")
    assert allow["principal"] == "events.amazonaws.com"
    assert allow["sourceArn"] == rule["outputs"]["arn"]
    assert allow["function"] == fn["inputs"]["name"]


def _grants(view: View, role: str) -> dict[str, set[str]]:
    grants: dict[str, set[str]] = {}
    for st in statements(view.role_policy(role)):
        assert st["Effect"] == "Allow"
        for action in as_list(st["Action"]):
            grants.setdefault(action, set()).update(as_list(st["Resource"]))
    return grants


def _glue_arns(view: View) -> set[str]:
    glue = f"arn:aws:glue:eu-west-1:{view.record['account']}"
    db = f"ecommerce_{view.stack}"
    return {f"{glue}:catalog", f"{glue}:database/{db}", f"{glue}:table/{db}/transactions"}


def test_maintenance_role_is_least_privilege(view: View) -> None:
    arn = view.bucket_arn()
    logs = view.arn_of("aws:cloudwatch/logGroup:LogGroup", "-maintenance-logs")
    expected = {
        "s3:GetObject": {f"{arn}/processed/*"},
        "s3:PutObject": {f"{arn}/processed/*"},
        "s3:DeleteObject": {f"{arn}/processed/*"},
        "s3:ListBucket": {arn},
        "glue:GetTable": _glue_arns(view),
        "glue:UpdateTable": _glue_arns(view),
        "logs:CreateLogStream": {logs, f"{logs}:*"},
        "logs:PutLogEvents": {logs, f"{logs}:*"},
        "sqs:SendMessage": {view.arn_of("aws:sqs/queue:Queue", "-maintenance-dlq")},
    }
    if view.cfg("ecommerce:storage.kms"):
        key = view.arn_of("aws:kms/key:Key", "-data-key")
        expected |= {"kms:GenerateDataKey": {key}, "kms:Decrypt": {key}}
    assert _grants(view, "maintenance") == expected


def test_transformer_commits_to_that_one_table_only(view: View) -> None:
    grants = _grants(view, "transformer")
    assert grants["glue:GetTable"] == grants["glue:UpdateTable"] == _glue_arns(view)
    assert {a for a in grants if a.startswith("glue:")} == {"glue:GetTable", "glue:UpdateTable"}


def test_maintenance_cannot_touch_raw_quarantine_or_state(view: View) -> None:
    text = json.dumps(view.role_policy("maintenance"))
    for prefix in ("raw/", "quarantine/", "_state/"):
        assert prefix not in text
    assert view.one(ROLE_POLICY, "-maintenance-policy")


def test_a_new_contract_column_flows_into_metadata_and_glue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing is restated by hand: a column added to the contract's schema appears everywhere."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import NestedField, StringType

    import infra.iceberg as iceberg

    base = iceberg_schema()
    extra = NestedField(
        field_id=base.highest_field_id + 1,
        name="source_sequencer",
        field_type=StringType(),
        required=False,
        doc="S3 event sequencer of the raw object version.",
    )
    monkeypatch.setattr(iceberg, "iceberg_schema", lambda: Schema(*base.fields, extra))
    metadata = iceberg.initial_metadata("bucket", "db")
    assert metadata.schema().find_field("source_sequencer").doc == extra.doc
    columns = iceberg.glue_columns(metadata)
    assert columns[-1] == {
        "name": "source_sequencer",
        "type": "string",
        "parameters": {
            "iceberg.field.id": str(extra.field_id),
            "iceberg.field.optional": "true",
            "iceberg.field.current": "true",
        },
        "comment": extra.doc,
    }
    assert len(columns) == len(base.fields) + 1
