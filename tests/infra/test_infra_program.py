"""The real Pulumi program under mocks, per stack: what each stack creates, and how they differ."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from infra_view import (
    ALARM,
    BUCKET,
    COMPONENT_PREFIX,
    DASHBOARD,
    DATABASE,
    FUNCTION,
    INVOKE_CONFIG,
    KMS_KEY,
    LAYER,
    LOG_GROUP,
    NAMED_QUERY,
    NOTIFICATION,
    PERMISSION,
    QUEUE,
    ROLE,
    ROLE_POLICY,
    RULE,
    STACK_TYPE,
    SUBSCRIPTION,
    TABLE,
    TARGET,
    TOPIC,
    WORKGROUP,
    View,
    as_list,
    statements,
)

from handlers.core import metrics
from handlers.core.layout import RAW_SUFFIXES

ROOT = Path(__file__).resolve().parents[2]
STACKS = ("dev", "prod")
EXPECTED_TAGS = {"dev": "dev", "prod": "prod"}
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
PUBLIC_ACCESS = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
LAYER_OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"


# -- program shape -----------------------------------------------------------------


def test_exports_name_everything_a_user_needs(view: View) -> None:
    out = view.outputs
    bucket = out["bucket"]
    assert out["prefixes"] == {
        "raw": f"s3://{bucket}/raw/",
        "processed": f"s3://{bucket}/processed/",
        "quarantine": f"s3://{bucket}/quarantine/",
    }
    assert out["functions"] == {
        role: f"ecommerce-{view.stack}-{role}"
        for role in ("generator", "transformer", "maintenance")
    }
    assert set(out["deadLetterQueues"]) == set(out["functions"])
    assert out["glueDatabase"] == f"ecommerce_{view.stack}"
    assert out["glueTables"] == {"transactions": "transactions", "quarantine": "quarantine"}
    assert out["athenaWorkgroup"] == f"ecommerce-{view.stack}"
    assert out["alertTopic"] == view.one(TOPIC)["outputs"]["arn"]
    assert out["athenaResultsBucket"] == view.one(BUCKET, "-data-athena-results")["outputs"]["id"]
    assert out["artifactsBucket"] == view.one(BUCKET, "-data-artifacts")["outputs"]["id"]
    assert out["maintenanceSchedule"] == f"ecommerce-{view.stack}-maintenance-schedule"
    assert out["icebergMetadataV0"].startswith(f"s3://{bucket}/processed/metadata/00000-")


def test_every_resource_belongs_to_a_component(view: View) -> None:
    components = [r for r in view.resources if not r["custom"]]
    assert {c["type"] for c in components} >= {
        "ecommerce:infra:Storage",
        "ecommerce:infra:Functions",
        "ecommerce:infra:Triggers",
        "ecommerce:infra:Catalog",
        "ecommerce:infra:Monitoring",
        "ecommerce:infra:Guards",
        "ecommerce:infra:MaintenanceSchedule",
    }
    for component in components:
        assert component["type"].startswith(COMPONENT_PREFIX)
        parent = component["parent"]
        assert parent.split("::")[2].endswith(STACK_TYPE) or view.by_urn[parent]["type"].startswith(
            COMPONENT_PREFIX
        )
    for resource in view.resources:
        if resource["custom"]:
            assert view.component_of(resource).startswith(COMPONENT_PREFIX), resource["urn"]


def test_everything_taggable_carries_project_stack_owner(view: View) -> None:
    taggable = view.record["taggable"]
    tagged = [r for r in view.resources if r["custom"] and taggable[r["type"]]]
    assert len(tagged) >= 20
    for resource in tagged:
        assert resource["inputs"].get("tags") == {
            "project": "ecommerce",
            "stack": view.stack,
            "owner": view.cfg("ecommerce:owner"),
        }, resource["urn"]


def test_no_pulumi_aws_deprecations(view: View) -> None:
    runtime = [
        w for w in view.record["warnings"] if w["scope"] == "runtime" and "pulumi_aws" in w["file"]
    ]
    assert runtime == []
    logged = [log for log in view.record["logs"] if "deprecat" in log["message"].lower()]
    assert logged == []
    assert view.record["deprecatedInputs"] == {}


def test_deprecation_capture_is_not_vacuous(program: Callable[..., dict[str, Any]]) -> None:
    """The same capture flags a deprecated resource and a deprecated property."""
    record = program("dev", canary=True)
    assert any("BucketV2 is deprecated" in log["message"] for log in record["logs"])
    assert ["isEnabled"] in record["deprecatedInputs"].values()


# -- storage ---------------------------------------------------------------------


def test_every_bucket_is_locked_down(view: View) -> None:
    buckets = view.all(BUCKET)
    expected = {"data", "data-athena-results", "data-artifacts"}
    if view.cfg("ecommerce:storage.accessLogging"):
        expected.add("data-access-logs")
    assert {b["name"].removeprefix(f"ecommerce-{view.stack}-") for b in buckets} == expected
    for bucket in buckets:
        bucket_id = bucket["outputs"]["id"]
        arn = bucket["outputs"]["arn"]
        (block,) = [
            r["inputs"] for r in view.all(PUBLIC_ACCESS) if r["inputs"]["bucket"] == bucket_id
        ]
        for flag in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        ):
            assert block[flag] is True
        assert [r for r in view.all(ENCRYPTION) if r["inputs"]["bucket"] == bucket_id]
        (policy,) = [
            json.loads(r["inputs"]["policy"])
            for r in view.all(BUCKET_POLICY)
            if r["inputs"]["bucket"] == bucket_id
        ]
        by_sid = {st["Sid"]: st for st in statements(policy)}
        tls = by_sid["DenyInsecureTransport"]
        assert tls["Effect"] == "Deny" and tls["Principal"] == "*"
        assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert set(tls["Resource"]) == {arn, f"{arn}/*"}
        old_tls = by_sid["DenyTlsBelow12"]
        assert old_tls["Effect"] == "Deny" and old_tls["Action"] == "s3:*"
        assert old_tls["Condition"] == {"NumericLessThan": {"s3:TlsVersion": "1.2"}}


def test_encryption_sse_s3_in_dev_kms_in_prod(dev: View, prod: View) -> None:
    (rule,) = dev.inputs(ENCRYPTION, "-data-encryption")["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    assert dev.maybe(KMS_KEY, "-data-key") is None
    (rule,) = prod.inputs(ENCRYPTION, "-data-encryption")["rules"]
    key_arn = prod.arn_of(KMS_KEY, "-data-key")
    assert rule["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "aws:kms",
        "kmsMasterKeyId": key_arn,
    }
    assert prod.outputs["kmsKeyArn"] == key_arn
    assert prod.inputs(KMS_KEY, "-data-key")["enableKeyRotation"] is True


def test_lifecycle_follows_stack_config(view: View) -> None:
    rules = {r["id"]: r for r in view.inputs(LIFECYCLE, "-data-lifecycle")["rules"]}
    expected = {
        "raw/": view.cfg("ecommerce:storage.rawExpiryDays"),
        "quarantine/": view.cfg("ecommerce:storage.quarantineExpiryDays"),
    }
    expiring = {
        r["filter"]["prefix"]: r["expiration"]["days"]
        for r in rules.values()
        if r.get("expiration", {}).get("days")
    }
    assert expiring == expected
    assert all(r["status"] == "Enabled" for r in rules.values())
    assert "processed/" not in expiring  # the table's files are maintenance's job
    results = view.inputs(LIFECYCLE, "-athena-results-lifecycle")["rules"]
    assert {
        r["filter"]["prefix"]: r["expiration"]["days"] for r in results if "expiration" in r
    } == {"": view.cfg("ecommerce:storage.athenaResultsExpiryDays")}


def test_versioning_and_deletion_safety(dev: View, prod: View) -> None:
    assert dev.maybe(VERSIONING, "-data-versioning") is None
    assert prod.inputs(VERSIONING, "-data-versioning")["versioningConfiguration"] == {
        "status": "Enabled"
    }
    noncurrent = [
        r
        for r in prod.inputs(LIFECYCLE, "-data-lifecycle")["rules"]
        if "noncurrentVersionExpiration" in r
    ]
    assert noncurrent[0]["noncurrentVersionExpiration"]["noncurrentDays"] == 30
    assert all(b["inputs"]["forceDestroy"] is True for b in dev.all(BUCKET))
    assert all(b["inputs"]["forceDestroy"] is False for b in prod.all(BUCKET))

    kept = {(r["type"], r["name"]) for r in prod.resources if r["protect"]}
    assert kept == {
        (BUCKET, "ecommerce-prod-data"),
        (BUCKET, "ecommerce-prod-data-access-logs"),
        (KMS_KEY, "ecommerce-prod-data-key"),
        (DATABASE, "ecommerce-prod-catalog-database"),
        (TABLE, "ecommerce-prod-catalog-transactions"),
        (LAYER_OBJECT, "ecommerce-prod-catalog-transactions-metadata-v0"),
    }
    assert kept == {(r["type"], r["name"]) for r in prod.resources if r["retainOnDelete"]}
    assert not [r for r in dev.resources if r["protect"]]
    # Only the table's first metadata file outlives a dev `pulumi destroy` of its resource.
    assert [r["name"] for r in dev.resources if r["retainOnDelete"]] == [
        "ecommerce-dev-catalog-transactions-metadata-v0"
    ]


# -- functions ---------------------------------------------------------------------


ROLES = ["generator", "transformer", "maintenance"]


@pytest.mark.parametrize("role", ROLES)
def test_function_sizing_comes_from_config(view: View, role: str) -> None:
    fn = view.function(role)
    sizing = view.cfg(f"ecommerce:{role}")
    assert fn["handler"] == f"handlers.{role}.handler"
    assert fn["runtime"] == view.cfg("ecommerce:lambdaRuntime")
    assert fn["memorySize"] == sizing["memoryMb"]
    assert fn["timeout"] == sizing["timeoutSeconds"]
    assert fn["architectures"] == [sizing["architecture"]]
    assert fn.get("reservedConcurrentExecutions") == sizing.get("reservedConcurrency")
    layer = next(r for r in view.all(LAYER) if r["outputs"]["arn"] in fn["layers"])
    assert layer["inputs"]["compatibleArchitectures"] == [sizing["architecture"]]
    assert layer["inputs"]["compatibleRuntimes"] == [fn["runtime"]]


def test_environment_follows_the_handler_contract(view: View) -> None:
    generator = view.function("generator")["environment"]["variables"]
    assert generator == {
        "LAKE_URL": f"s3://{view.bucket_name()}",
        "BATCH_SIZE": str(view.cfg("ecommerce:generator.batchSize")),
        "FAULT_RATE": str(view.cfg("ecommerce:generator.faultRate")),
        "STACK": view.stack,
        "POWERTOOLS_SERVICE_NAME": "generator",
        "LOG_LEVEL": view.cfg("ecommerce:logLevel"),
    }
    transformer = view.function("transformer")["environment"]["variables"]
    assert transformer == {
        "STACK": view.stack,
        "POWERTOOLS_SERVICE_NAME": "transformer",
        "POWERTOOLS_METRICS_NAMESPACE": "EcommercePipeline",
        "LOG_LEVEL": view.cfg("ecommerce:logLevel"),
        "GLUE_DATABASE": f"ecommerce_{view.stack}",
        "ICEBERG_TABLE": "transactions",
    }
    maintenance = view.function("maintenance")["environment"]["variables"]
    settings = view.cfg("ecommerce:maintenance")
    assert maintenance == {
        "LAKE_URL": f"s3://{view.bucket_name()}",
        "GLUE_DATABASE": f"ecommerce_{view.stack}",
        "ICEBERG_TABLE": "transactions",
        "TARGET_FILE_MB": str(settings["targetFileMb"]),
        "SNAPSHOT_RETENTION_HOURS": str(settings["snapshotRetentionHours"]),
        "ORPHAN_MIN_AGE_HOURS": str(settings["orphanMinAgeHours"]),
        "STACK": view.stack,
        "LOG_LEVEL": view.cfg("ecommerce:logLevel"),
        "POWERTOOLS_SERVICE_NAME": "maintenance",
    }


def test_code_archive_holds_only_handlers_and_schemas(view: View) -> None:
    upload = view.one(LAYER_OBJECT, "-code-zip")
    artifacts = view.one(BUCKET, "-data-artifacts")["outputs"]["id"]
    assert upload["inputs"]["bucket"] == artifacts
    assert re.fullmatch(r"code/functions-[0-9a-f]{16}\.zip", upload["inputs"]["key"])
    code = upload["inputs"]["source"]
    assert code["__archive"] == "assets"
    names = set(code["assets"])
    assert "handlers/generator.py" in names and "handlers/transformer.py" in names
    assert "schemas/transaction.py" in names
    assert {n.split("/")[0] for n in names} == {"handlers", "schemas"}
    assert not [n for n in names if "__pycache__" in n or "/tests/" in n]
    assert all(n.endswith((".py", ".json", ".typed")) for n in names)
    for role in ROLES:
        fn = view.function(role)
        assert (fn["s3Bucket"], fn["s3Key"]) == (artifacts, upload["inputs"]["key"])
        assert "code" not in fn


def test_layer_is_uploaded_to_s3_by_content_hash(view: View) -> None:
    artifacts = view.one(BUCKET, "-data-artifacts")["outputs"]["id"]
    for layer in view.all(LAYER):
        upload = next(
            r for r in view.all(LAYER_OBJECT) if r["inputs"]["key"] == layer["inputs"]["s3Key"]
        )
        arch = layer["inputs"]["compatibleArchitectures"][0]
        assert upload["inputs"]["bucket"] == artifacts
        assert layer["inputs"]["s3Bucket"] == artifacts
        assert upload["inputs"]["key"].startswith(f"layers/deps-{arch}-")
        assert upload["inputs"]["source"]["path"] == str(ROOT / "build" / f"layer-{arch}.zip")
        assert layer["inputs"]["sourceCodeHash"]


@pytest.mark.parametrize("role", ROLES)
def test_each_function_owns_logs_role_and_dead_letter_queue(view: View, role: str) -> None:
    fn = view.function(role)
    logs = view.inputs(LOG_GROUP, f"-{role}-logs")
    assert logs["name"] == f"/aws/lambda/{fn['name']}"
    assert logs["retentionInDays"] == view.cfg("ecommerce:logRetentionDays")
    level = {"WARNING": "WARN"}.get(view.cfg("ecommerce:logLevel"), view.cfg("ecommerce:logLevel"))
    assert fn["loggingConfig"] == {
        "logFormat": "JSON",
        "logGroup": logs["name"],
        "applicationLogLevel": level,
        "systemLogLevel": view.cfg("ecommerce:systemLogLevel"),
    }
    queue = view.one(QUEUE, f"-{role}-dlq")
    invoke = view.inputs(INVOKE_CONFIG, f"-{role}-async")
    assert invoke["functionName"] == fn["name"]
    assert invoke["destinationConfig"]["onFailure"]["destination"] == queue["outputs"]["arn"]
    assert queue["inputs"]["sqsManagedSseEnabled"] is True
    role_resource = view.one(ROLE, f"-{role}-role")
    assert fn["role"] == role_resource["outputs"]["arn"]
    trust = json.loads(role_resource["inputs"]["assumeRolePolicy"])
    assert statements(trust)[0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    function_resource = view.one(FUNCTION, f"-{role}")
    assert view.one(ROLE_POLICY, f"-{role}-policy")["urn"] in function_resource["dependsOn"]


def test_no_two_functions_share_a_role(view: View) -> None:
    assert len({view.function(role)["role"] for role in ROLES}) == len(ROLES)


# -- IAM -------------------------------------------------------------------------------


def _s3_grants(policy: dict[str, Any]) -> dict[str, set[str]]:
    """S3 action -> the resources it is granted on."""
    grants: dict[str, set[str]] = {}
    for st in statements(policy):
        assert st["Effect"] == "Allow"
        for action in as_list(st["Action"]):
            if action.startswith("s3:"):
                grants.setdefault(action, set()).update(as_list(st["Resource"]))
    return grants


def test_no_policy_allows_a_wildcard_action_on_a_wildcard_resource(view: View) -> None:
    found = view.policies()
    assert len(found) >= 6
    for where, document in found:
        for st in statements(document):
            if st["Effect"] != "Allow":
                continue
            actions = as_list(st.get("Action", []))
            resources = as_list(st.get("Resource", []))
            assert not ({"*", "*:*"} & set(actions) and "*" in resources), where


def test_roles_are_least_privilege(view: View) -> None:
    roles = [r for r in view.all(ROLE_POLICY)]
    assert roles
    for resource in roles:
        for st in statements(json.loads(resource["inputs"]["policy"])):
            for action in as_list(st["Action"]):
                assert "*" not in action.split(":")[1], (resource["name"], action)
            assert "*" not in as_list(st["Resource"]), resource["name"]
    assert not view.all("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert not [r for r in view.all(ROLE) if r["inputs"].get("managedPolicyArns")]
    assert "FullAccess" not in json.dumps(view.resources)


def test_generator_may_only_put_raw(view: View) -> None:
    arn = view.bucket_arn()
    assert _s3_grants(view.role_policy("generator")) == {"s3:PutObject": {f"{arn}/raw/*"}}


def test_transformer_reads_raw_and_writes_outputs_only(view: View) -> None:
    arn = view.bucket_arn()
    grants = _s3_grants(view.role_policy("transformer"))
    outputs = {f"{arn}/processed/*", f"{arn}/quarantine/*", f"{arn}/_state/*"}
    assert grants == {
        "s3:GetObject": {f"{arn}/raw/*"} | outputs,
        "s3:GetObjectVersion": {f"{arn}/raw/*"},
        "s3:PutObject": outputs,
        "s3:DeleteObject": outputs,
        "s3:ListBucket": {arn},
    }


@pytest.mark.parametrize("role", ROLES)
def test_roles_reach_only_their_own_logs_queue_and_key(view: View, role: str) -> None:
    policy = view.role_policy(role)
    by_service: dict[str, set[str]] = {}
    for st in statements(policy):
        for action in as_list(st["Action"]):
            by_service.setdefault(action.split(":")[0], set()).update(as_list(st["Resource"]))
    logs_arn = view.one(LOG_GROUP, f"-{role}-logs")["outputs"]["arn"]
    assert by_service["logs"] == {logs_arn, f"{logs_arn}:*"}
    assert by_service["sqs"] == {view.one(QUEUE, f"-{role}-dlq")["outputs"]["arn"]}
    if view.cfg("ecommerce:storage.kms"):
        assert by_service["kms"] == {view.arn_of(KMS_KEY, "-data-key")}
    else:
        assert "kms" not in by_service
    assert set(by_service) <= {"s3", "logs", "sqs", "kms", "glue"}


# -- triggers --------------------------------------------------------------------------


def test_schedule_invokes_the_generator(view: View) -> None:
    rule = view.one(RULE, "-triggers-schedule")
    assert rule["inputs"]["scheduleExpression"] == view.cfg("ecommerce:schedule.expression")
    enabled = view.cfg("ecommerce:schedule.enabled")
    assert rule["inputs"]["state"] == ("ENABLED" if enabled else "DISABLED")
    generator = view.one(FUNCTION, "-generator")
    assert view.inputs(TARGET, "-schedule-target")["arn"] == generator["outputs"]["arn"]
    allow = view.inputs(PERMISSION, "-events-invoke-generator")
    assert allow["principal"] == "events.amazonaws.com"
    assert allow["sourceArn"] == rule["outputs"]["arn"]
    assert allow["function"] == generator["inputs"]["name"]


def test_raw_objects_trigger_the_transformer_after_the_permission(view: View) -> None:
    notification = view.one(NOTIFICATION)
    permission = view.one(PERMISSION, "-s3-invoke-transformer")
    transformer = view.one(FUNCTION, "-transformer")
    # The explicit depends_on: S3 validates the target when saving the notification.
    assert permission["urn"] in notification["dependsOn"]
    assert permission["inputs"]["principal"] == "s3.amazonaws.com"
    assert permission["inputs"]["sourceArn"] == view.bucket_arn()
    assert permission["inputs"]["sourceAccount"] == view.record["account"]
    assert permission["inputs"]["function"] == transformer["inputs"]["name"]
    configs = notification["inputs"]["lambdaFunctions"]
    suffixes = [c["filterSuffix"] for c in configs]
    # Every name the transformer recognises triggers it (S3 matches prefix and suffix)...
    for recognised in RAW_SUFFIXES:
        key = f"raw/dt=2026-11-30/orders{recognised}"
        assert any(key.endswith(s) for s in suffixes), f"{key} would never be transformed"
    assert {".ndjson", ".gz"} <= set(suffixes)
    # ...and no filter ends another, which S3 would reject as overlapping.
    assert not [(a, b) for a in suffixes for b in suffixes if a != b and a.endswith(b)]
    for config in configs:
        assert config["filterPrefix"] == "raw/"
        assert config["events"] == ["s3:ObjectCreated:*"]
        assert config["lambdaFunctionArn"] == transformer["outputs"]["arn"]
    assert notification["inputs"]["bucket"] == view.bucket_name()


# -- catalog ---------------------------------------------------------------------------


def test_quarantine_table_reads_the_json_lines_entries(view: View) -> None:
    table = view.inputs(TABLE, "-quarantine")
    sd = table["storageDescriptor"]
    assert sd["serDeInfo"]["serializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert sd["location"] == f"s3://{view.bucket_name()}/quarantine/"
    columns = {c["name"]: c["type"] for c in sd["columns"]}
    assert columns["record"] == "string"
    assert columns["errors"] == "array<struct<column:string,check:string,value:string>>"
    assert set(columns) == {
        "entry_id",
        "record",
        "record_is_raw_text",
        "errors",
        "source_key",
        "source_version",
        "line",
        "record_index",
        "quarantined_at",
        "schema_version",
    }
    assert table["partitionKeys"] == [
        {"name": "dt", "type": "string", "comment": "UTC day the record was quarantined"}
    ]
    params = table["parameters"]
    assert params["projection.dt.type"] == "date"
    assert params["projection.dt.format"] == "yyyy-MM-dd"
    assert params["storage.location.template"].endswith("/quarantine/dt=${dt}/")


def test_athena_workgroup_is_enforced_and_encrypted(view: View) -> None:
    wg = view.inputs(WORKGROUP)
    conf = wg["configuration"]
    assert conf["enforceWorkgroupConfiguration"] is True
    assert conf["bytesScannedCutoffPerQuery"] == view.cfg("ecommerce:athenaBytesScannedCutoff")
    result = conf["resultConfiguration"]
    results = view.one(BUCKET, "-data-athena-results")["outputs"]["id"]
    assert result["outputLocation"] == f"s3://{results}/"
    assert result["expectedBucketOwner"] == view.record["account"]
    if view.cfg("ecommerce:storage.kms"):
        assert result["encryptionConfiguration"] == {
            "encryptionOption": "SSE_KMS",
            "kmsKeyArn": view.arn_of(KMS_KEY, "-data-key"),
        }
    else:
        assert result["encryptionConfiguration"] == {"encryptionOption": "SSE_S3"}


def test_every_sql_file_becomes_a_named_query(view: View) -> None:
    files = sorted((ROOT / "queries").glob("*.sql")) + sorted(
        (ROOT / "queries" / "athena").glob("*.sql")
    )
    queries = {q["inputs"]["name"]: q["inputs"] for q in view.all(NAMED_QUERY)}
    assert set(queries) == {f.stem for f in files if f.read_text().strip()}
    assert "quarantine_by_rule_7d" in queries
    for path in files:
        query = queries[path.stem]
        assert query["query"] == path.read_text().strip()
        assert query["database"] == f"ecommerce_{view.stack}"
        assert query["workgroup"] == f"ecommerce-{view.stack}"


def test_quarantine_query_groups_rules_over_seven_days() -> None:
    sql = (ROOT / "queries" / "athena" / "quarantine_by_rule_7d.sql").read_text()
    assert "UNNEST(q.errors)" in sql
    assert "GROUP BY err_column, err_check" in sql
    assert "date_format(current_date - INTERVAL '7' DAY, '%Y-%m-%d')" in sql


# -- monitoring ------------------------------------------------------------------------


def test_alert_topic_is_encrypted_with_a_key_alarms_can_use(view: View) -> None:
    topic = view.inputs(TOPIC)
    key = view.one(KMS_KEY, "-alerts-key")
    assert topic["kmsMasterKeyId"] == key["outputs"]["arn"]
    policy = json.loads(key["inputs"]["policy"])
    alarm_grant = next(s for s in statements(policy) if s["Sid"] == "AlarmsPublish")
    assert alarm_grant["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert alarm_grant["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}


def test_email_subscription_required_in_prod_optional_in_dev(dev: View, prod: View) -> None:
    subscription = prod.inputs(SUBSCRIPTION)
    assert subscription["protocol"] == "email"
    assert subscription["endpoint"] == prod.cfg("ecommerce:alertEmail")
    assert dev.maybe(SUBSCRIPTION) is None  # blank in Pulumi.dev.yaml


def test_alarms_cover_errors_dead_letters_and_quarantine_rate(view: View) -> None:
    alarms = {
        a["inputs"]["name"].removeprefix(f"ecommerce-{view.stack}-"): a["inputs"]
        for a in view.all(ALARM)
    }
    assert set(alarms) == {
        "transformer-errors",
        "generator-errors",
        "transformer-dead-letters",
        "generator-dead-letters",
        "maintenance-errors",
        "maintenance-dead-letters",
        "quarantine-rate",
    }
    topic_arn = view.one(TOPIC)["outputs"]["arn"]
    for alarm in alarms.values():
        assert alarm["alarmActions"] == [topic_arn]
    assert alarms["transformer-errors"]["dimensions"] == {
        "FunctionName": view.function("transformer")["name"]
    }
    assert alarms["transformer-errors"]["metricName"] == "Errors"
    assert alarms["maintenance-errors"]["dimensions"] == {
        "FunctionName": view.function("maintenance")["name"]
    }
    assert alarms["generator-errors"]["dimensions"] == {
        "FunctionName": view.function("generator")["name"]
    }
    assert alarms["transformer-dead-letters"]["dimensions"] == {
        "QueueName": view.inputs(QUEUE, "-transformer-dlq")["name"]
    }
    assert alarms["transformer-dead-letters"]["metricName"] == "ApproximateNumberOfMessagesVisible"
    rate = alarms["quarantine-rate"]
    assert rate["namespace"] == "EcommercePipeline"
    assert rate["metricName"] == "QuarantineRate"
    assert rate["unit"] == "Percent"
    assert rate["dimensions"] == {"service": "transformer", "stack": view.stack}
    assert rate["threshold"] == view.cfg("ecommerce:quarantineRateAlarmPercent")


def test_dashboard_shows_the_pipeline(view: View) -> None:
    body = json.loads(view.inputs(DASHBOARD)["dashboardBody"])
    text = json.dumps(body)
    for needle in (
        view.function("generator")["name"],
        view.function("transformer")["name"],
        "QuarantineRate",
        view.inputs(QUEUE, "-transformer-dlq")["name"],
    ):
        assert needle in text
    alarm_widget = next(w for w in body["widgets"] if w["type"] == "alarm")
    assert len(alarm_widget["properties"]["alarms"]) == 7


def test_alarms_and_dashboard_watch_only_metrics_the_transformer_emits(view: View) -> None:
    watched = [a["inputs"] for a in view.all(ALARM)]
    watched = [a for a in watched if a["namespace"] == metrics.NAMESPACE]
    assert watched, "no alarm on the pipeline's own metrics"
    for alarm in watched:
        assert alarm["metricName"] in metrics.EMITTED
        assert alarm["dimensions"] == metrics.dimensions(view.stack)
    body = json.loads(view.inputs(DASHBOARD)["dashboardBody"])
    lines = [m for w in body["widgets"] for m in w["properties"].get("metrics", [])]
    ours = [m for m in lines if m[0] == metrics.NAMESPACE]
    assert len(ours) >= 4
    for line in ours:
        assert line[1] in metrics.EMITTED
        assert dict(zip(line[2::2], line[3::2], strict=True)) == metrics.dimensions(view.stack)
    # The function's Powertools settings name the same namespace and service.
    env = view.function("transformer")["environment"]["variables"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == metrics.NAMESPACE
    assert env["POWERTOOLS_SERVICE_NAME"] == metrics.SERVICE


# -- two isolated copies -----------------------------------------------------------------


def test_stacks_share_no_physical_name(dev: View, prod: View) -> None:
    def names(v: View) -> set[str]:
        found = {
            r["inputs"]["name"] for r in v.resources if r["custom"] and r["inputs"].get("name")
        }
        found |= {r["outputs"]["id"] for r in v.all(BUCKET)}
        return found

    dev_names, prod_names = names(dev), names(prod)
    shared = dev_names & prod_names
    # Table and query names live inside their stack's database, so they may repeat.
    assert shared <= {"transactions", "quarantine"} | {
        q["inputs"]["name"] for q in dev.all(NAMED_QUERY)
    }
    for v, found in ((dev, dev_names - shared), (prod, prod_names - shared)):
        assert all(v.stack in name for name in found), found


def test_dev_and_prod_differ_where_environments_should(dev: View, prod: View) -> None:
    def facts(v: View) -> dict[str, Any]:
        return {
            "kms": v.maybe(KMS_KEY, "-data-key") is not None,
            "versioning": v.maybe(VERSIONING, "-data-versioning") is not None,
            "forceDestroy": v.inputs(BUCKET, "-data")["forceDestroy"],
            "protected": any(r["protect"] for r in v.resources),
            "accessLogs": v.maybe(BUCKET, "-data-access-logs") is not None,
            "schedule": v.inputs(RULE, "-triggers-schedule")["state"],
            "maintenance": v.inputs(RULE, "-maintenance-rule")["state"],
            "arch": v.function("transformer")["architectures"][0],
            "retention": v.inputs(LOG_GROUP, "-transformer-logs")["retentionInDays"],
            "email": v.maybe(SUBSCRIPTION) is not None,
            "athenaEncryption": v.inputs(WORKGROUP)["configuration"]["resultConfiguration"][
                "encryptionConfiguration"
            ]["encryptionOption"],
        }

    assert facts(dev) == {
        "kms": False,
        "versioning": False,
        "forceDestroy": True,
        "protected": False,
        "accessLogs": False,
        "schedule": "DISABLED",
        "maintenance": "DISABLED",
        "arch": "x86_64",
        "retention": 7,
        "email": False,
        "athenaEncryption": "SSE_S3",
    }
    assert facts(prod) == {
        "kms": True,
        "versioning": True,
        "forceDestroy": False,
        "protected": True,
        "accessLogs": True,
        "schedule": "ENABLED",
        "maintenance": "ENABLED",
        "arch": "arm64",
        "retention": 90,
        "email": True,
        "athenaEncryption": "SSE_KMS",
    }


# -- bad config stops the program --------------------------------------------------------


@pytest.mark.parametrize(
    ("stack", "sets", "unsets", "key"),
    [
        ("dev", ("ecommerce:logRetentionDays=-1",), (), "ecommerce:logRetentionDays"),
        ("prod", (), ("ecommerce:alertEmail",), "ecommerce:alertEmail"),
        ("dev", ("ecommerce:transformer.architecture=sparc",), (), "ecommerce:transformer"),
    ],
)
def test_bad_config_stops_the_program_with_one_clear_message(
    program: Callable[..., dict[str, Any]],
    stack: str,
    sets: tuple[str, ...],
    unsets: tuple[str, ...],
    key: str,
) -> None:
    record = program(stack, sets=sets, unsets=unsets)
    assert record["exitCode"] == 3
    assert record["error"]["type"] == "RunError"  # Pulumi prints it without a traceback
    message = record["error"]["message"]
    assert message.startswith("invalid stack config:")
    assert key in message
    assert record["resources"] == []  # nothing was registered
