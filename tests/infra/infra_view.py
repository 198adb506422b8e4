"""Read-only queries over a program record: resources by type, parents, policies."""

from __future__ import annotations

import json
from typing import Any

COMPONENT_PREFIX = "ecommerce:infra:"
STACK_TYPE = "pulumi:pulumi:Stack"

BUCKET = "aws:s3/bucket:Bucket"
KMS_KEY = "aws:kms/key:Key"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
FUNCTION = "aws:lambda/function:Function"
LAYER = "aws:lambda/layerVersion:LayerVersion"
PERMISSION = "aws:lambda/permission:Permission"
INVOKE_CONFIG = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
QUEUE = "aws:sqs/queue:Queue"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
NOTIFICATION = "aws:s3/bucketNotification:BucketNotification"
DATABASE = "aws:glue/catalogDatabase:CatalogDatabase"
TABLE = "aws:glue/catalogTable:CatalogTable"
CRAWLER = "aws:glue/crawler:Crawler"
WORKGROUP = "aws:athena/workgroup:Workgroup"
NAMED_QUERY = "aws:athena/namedQuery:NamedQuery"
TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
BUCKET_OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
BUCKET_LOGGING = "aws:s3/bucketLogging:BucketLogging"
KEY_POLICY = "aws:kms/keyPolicy:KeyPolicy"
ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
PUBLIC_ACCESS = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"


class View:
    """One stack's record."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        self.stack: str = record["stack"]
        self.config: dict[str, Any] = record["config"]
        self.resources: list[dict[str, Any]] = record["resources"]
        self.by_urn = {r["urn"]: r for r in self.resources}
        self.outputs: dict[str, Any] = record["outputs"]

    def cfg(self, key: str) -> Any:
        """A config value by `ns:key.path`, as written in `Pulumi.<stack>.yaml`."""
        namespace, _, rest = key.partition(":")
        top, *inner = rest.split(".")
        value = self.config.get(f"{namespace}:{top}")
        for part in inner:
            value = None if value is None else value.get(part)
        return value

    def all(self, type_: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] == type_]

    def one(self, type_: str, name_endswith: str = "") -> dict[str, Any]:
        found = [r for r in self.all(type_) if r["name"].endswith(name_endswith)]
        assert len(found) == 1, f"expected one {type_} named *{name_endswith}, got {found}"
        return found[0]

    def maybe(self, type_: str, name_endswith: str = "") -> dict[str, Any] | None:
        found = [r for r in self.all(type_) if r["name"].endswith(name_endswith)]
        assert len(found) <= 1
        return found[0] if found else None

    def inputs(self, type_: str, name_endswith: str = "") -> dict[str, Any]:
        return self.one(type_, name_endswith)["inputs"]

    def function(self, role: str) -> dict[str, Any]:
        return self.inputs(FUNCTION, f"-{role}")

    def parent_of(self, resource: dict[str, Any]) -> dict[str, Any] | None:
        return self.by_urn.get(resource["parent"] or "")

    def component_of(self, resource: dict[str, Any]) -> str:
        """The component type that owns a resource."""
        parent = self.parent_of(resource)
        return parent["type"] if parent else ""

    def role_policy(self, role: str) -> dict[str, Any]:
        return json.loads(self.inputs(ROLE_POLICY, f"-{role}-policy")["policy"])

    def arn_of(self, type_: str, name_endswith: str = "") -> str:
        """The ARN the mocks gave a resource."""
        return self.one(type_, name_endswith)["outputs"]["arn"]

    def bucket_name(self) -> str:
        return self.outputs["bucket"]

    def bucket_arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket_name()}"

    def bucket(self, suffix: str) -> dict[str, Any]:
        """A bucket by resource-name suffix: `-data`, `-data-artifacts`, ..."""
        return self.one(BUCKET, suffix)

    def on_bucket(self, type_: str, bucket: dict[str, Any]) -> dict[str, Any]:
        """The one resource of a type that configures this bucket."""
        (found,) = [
            r for r in self.all(type_) if r["inputs"].get("bucket") == bucket["outputs"]["id"]
        ]
        return found["inputs"]

    def bucket_policy(self, suffix: str) -> dict[str, Any]:
        return json.loads(self.on_bucket(BUCKET_POLICY, self.bucket(suffix))["policy"])

    def role_arns(self) -> dict[str, str]:
        """Function role -> its execution role's ARN."""
        return {
            r["name"].removeprefix(f"ecommerce-{self.stack}-").removesuffix("-role"): r["outputs"][
                "arn"
            ]
            for r in self.all(ROLE)
        }

    def policies(self) -> list[tuple[str, dict[str, Any]]]:
        """Every policy document anywhere in the inputs, with the resource that holds it."""
        found = []
        for r in self.resources:
            for key in ("policy", "assumeRolePolicy"):
                text = r["inputs"].get(key)
                if isinstance(text, str) and text.startswith("{"):
                    found.append((f"{r['name']}.{key}", json.loads(text)))
        return found


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = document["Statement"]
    return found if isinstance(found, list) else [found]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
