"""Functions tier: generator, transformer and maintenance, each with its own role, logs and DLQ."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from handlers.core import metrics
from infra import policies
from infra.config import FunctionSettings, Settings
from infra.packaging import LayerArtifact, code_files

# Failed async events stay in the dead-letter queue for SQS's maximum, 14 days.
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
ROLES = ("generator", "transformer", "maintenance")


@dataclass(frozen=True)
class FunctionSpec:
    """What differs between the functions."""

    role: str  # one of ROLES
    handler: str
    sizing: FunctionSettings
    environment: dict[str, pulumi.Input[str]]
    policy: Callable[[policies.Grants], dict]


@dataclass(frozen=True)
class Targets:
    """What the functions' policies are written against."""

    partition: pulumi.Input[str]
    account_id: pulumi.Input[str]
    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str] | None
    database: pulumi.Input[str]
    table: pulumi.Input[str]


@dataclass(frozen=True)
class Code:
    """Where the function code and the layers live (the artifacts bucket)."""

    bucket: pulumi.Output[str]
    key: pulumi.Output[str]
    layers: dict[str, aws.lambda_.LayerVersion]
    uploads: list[aws.s3.BucketObjectv2]


class PipelineFunction(pulumi.ComponentResource):
    """One Lambda function with everything it owns: role, policy, log group, DLQ."""

    def __init__(
        self,
        name: str,
        *,
        spec: FunctionSpec,
        settings: Settings,
        code: Code,
        targets: Targets,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("ecommerce:infra:PipelineFunction", name, None, opts)
        s = settings
        child = pulumi.ResourceOptions(parent=self)
        function_name = f"{s.name_prefix}-{spec.role}"

        self.log_group, self.dead_letters = self._logs_and_queue(name, function_name, s)
        self.role = aws.iam.Role(
            f"{name}-role",
            description=f"Execution role of {function_name}",
            assume_role_policy=pulumi.Output.from_input(targets.account_id).apply(
                lambda account: json.dumps(
                    policies.assume_role("lambda.amazonaws.com", account_id=account)
                )
            ),
            tags=s.tags,
            opts=child,
        )
        role_policy = aws.iam.RolePolicy(
            f"{name}-policy",
            role=self.role.id,
            policy=self._policy_document(spec, s, targets),
            opts=child,
        )
        self.function = self._function(name, function_name, spec, s, code, role_policy)
        aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-async",
            function_name=self.function.name,
            maximum_retry_attempts=2,
            maximum_event_age_in_seconds=6 * 3600,
            destination_config={"on_failure": {"destination": self.dead_letters.arn}},
            # Lambda checks the role may send to the destination when this is created.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role_policy]),
        )
        self.register_outputs(
            {"function": self.function.name, "deadLetterQueue": self.dead_letters.name}
        )

    def _logs_and_queue(
        self, name: str, function_name: str, s: Settings
    ) -> tuple[aws.cloudwatch.LogGroup, aws.sqs.Queue]:
        child = pulumi.ResourceOptions(parent=self)
        # Created before the function so Lambda never auto-creates it without retention.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/lambda/{function_name}",
            retention_in_days=s.log_retention_days,
            tags=s.tags,
            opts=child,
        )
        dead_letters = aws.sqs.Queue(
            f"{name}-dlq",
            name=f"{function_name}-dlq",
            message_retention_seconds=DLQ_RETENTION_SECONDS,
            sqs_managed_sse_enabled=True,
            tags=s.tags,
            opts=child,
        )
        return log_group, dead_letters

    def _policy_document(self, spec: FunctionSpec, s: Settings, t: Targets) -> pulumi.Output[str]:
        key = t.kms_key_arn if t.kms_key_arn is not None else ""
        values = [t.partition, t.account_id, t.bucket_arn, self.log_group.arn]
        values += [self.dead_letters.arn, key, t.database, t.table]
        return pulumi.Output.all(*values).apply(
            lambda v: json.dumps(
                spec.policy(
                    policies.Grants(
                        partition=v[0],
                        region=s.region,
                        account_id=v[1],
                        bucket_arn=v[2],
                        log_group_arn=v[3],
                        queue_arn=v[4],
                        kms_key_arn=v[5] or None,
                        database=v[6],
                        table=v[7],
                    )
                )
            )
        )

    def _function(
        self,
        name: str,
        function_name: str,
        spec: FunctionSpec,
        s: Settings,
        code: Code,
        role_policy: aws.iam.RolePolicy,
    ) -> aws.lambda_.Function:
        sizing = spec.sizing
        return aws.lambda_.Function(
            name,
            name=function_name,
            role=self.role.arn,
            runtime=s.lambda_runtime,
            handler=spec.handler,
            s3_bucket=code.bucket,
            s3_key=code.key,
            layers=[code.layers[sizing.architecture].arn],
            architectures=[sizing.architecture],
            memory_size=sizing.memory_mb,
            timeout=sizing.timeout_seconds,
            reserved_concurrent_executions=sizing.reserved_concurrency,
            environment={"variables": spec.environment},
            # JSON: CloudWatch Logs Insights filters on fields; Lambda drops records
            # below the levels here before they are billed.
            logging_config={
                "log_format": "JSON",
                "log_group": self.log_group.name,
                "application_log_level": s.application_log_level,
                "system_log_level": s.system_log_level,
            },
            tags=s.tags,
            # The policy must exist before the first invocation can write logs.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role_policy, *code.uploads]),
        )


class Functions(pulumi.ComponentResource):
    """The dependency layer(s), the code archive, and the three functions."""

    def __init__(
        self,
        name: str,
        *,
        settings: Settings,
        layers: dict[str, LayerArtifact],
        artifacts_bucket: pulumi.Output[str],
        targets: Targets,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("ecommerce:infra:Functions", name, None, opts)
        s = settings
        code = self._code(name, s, layers, artifacts_bucket)
        built = {
            spec.role: PipelineFunction(
                f"{s.name_prefix}-{spec.role}",
                spec=spec,
                settings=s,
                code=code,
                targets=targets,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for spec in function_specs(s, targets)
        }
        self.layers = code.layers
        self.generator = built["generator"]
        self.transformer = built["transformer"]
        self.maintenance = built["maintenance"]
        self.all = built
        self.register_outputs({role: f.function.name for role, f in built.items()})

    def _code(
        self,
        name: str,
        s: Settings,
        layers: dict[str, LayerArtifact],
        bucket: pulumi.Output[str],
    ) -> Code:
        child = pulumi.ResourceOptions(parent=self)
        uploads = []
        versions: dict[str, aws.lambda_.LayerVersion] = {}
        for arch, artifact in sorted(layers.items()):
            # Lambda takes at most 50 MB zipped by direct upload; the layer goes via S3.
            # The key carries the content hash, so a rebuilt layer is a new object and
            # a new layer version, and an unchanged one is left alone.
            upload = aws.s3.BucketObjectv2(
                f"{name}-layer-{arch}-zip",
                bucket=bucket,
                key=f"layers/deps-{arch}-{artifact.sha256[:16]}.zip",
                source=pulumi.FileAsset(str(artifact.zip_path)),
                source_hash=artifact.sha256,
                tags=s.tags,
                opts=child,
            )
            versions[arch] = aws.lambda_.LayerVersion(
                f"{name}-layer-{arch}",
                layer_name=f"{s.name_prefix}-deps-{arch}",
                description="Pinned runtime dependencies (requirements-lambda.txt)",
                s3_bucket=upload.bucket,
                s3_key=upload.key,
                compatible_runtimes=[s.lambda_runtime],
                compatible_architectures=[arch],
                source_code_hash=artifact.sha256_base64,
                opts=child,
            )
        # Same scheme for the code: a changed file is a new key, which updates the functions.
        digest = code_digest(s.root)
        archive = aws.s3.BucketObjectv2(
            f"{name}-code-zip",
            bucket=bucket,
            key=f"code/functions-{digest[:16]}.zip",
            source=function_code(s.root),
            tags=s.tags,
            opts=child,
        )
        uploads.append(archive)
        return Code(bucket=archive.bucket, key=archive.key, layers=versions, uploads=uploads)


def function_specs(s: Settings, t: Targets) -> tuple[FunctionSpec, ...]:
    """Handler, sizing, environment (the handlers' contract) and policy of each function."""
    common = {"STACK": s.stack, "LOG_LEVEL": s.log_level}
    lake = pulumi.Output.concat("s3://", t.bucket_name)
    iceberg = {"GLUE_DATABASE": t.database, "ICEBERG_TABLE": t.table}
    return (
        FunctionSpec(
            role="generator",
            handler="handlers.generator.handler",
            sizing=s.generator,
            environment={
                **common,
                "POWERTOOLS_SERVICE_NAME": "generator",
                "LAKE_URL": lake,
                "BATCH_SIZE": str(s.batch_size),
                "FAULT_RATE": repr(s.fault_rate),
            },
            policy=policies.generator_policy,
        ),
        FunctionSpec(
            role="transformer",
            handler="handlers.transformer.handler",
            sizing=s.transformer,
            environment={
                **common,
                **iceberg,
                "POWERTOOLS_SERVICE_NAME": "transformer",
                "POWERTOOLS_METRICS_NAMESPACE": metrics.NAMESPACE,
            },
            policy=policies.transformer_policy,
        ),
        FunctionSpec(
            role="maintenance",
            handler="handlers.maintenance.handler",
            sizing=s.maintenance.function,
            environment={
                **common,
                **iceberg,
                "POWERTOOLS_SERVICE_NAME": "maintenance",
                "LAKE_URL": lake,
                "TARGET_FILE_MB": str(s.maintenance.target_file_mb),
                "SNAPSHOT_RETENTION_HOURS": str(s.maintenance.snapshot_retention_hours),
                "ORPHAN_MIN_AGE_HOURS": str(s.maintenance.orphan_min_age_hours),
            },
            policy=policies.maintenance_policy,
        ),
    )


def code_digest(root: Path) -> str:
    """sha256 over the archive's file names and contents: changes exactly when the code does."""
    digest = hashlib.sha256()
    for name, path in sorted(code_files(root).items()):
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def function_code(root: Path) -> pulumi.AssetArchive:
    """Only `handlers/` and `schemas/` source: no tests, infra, CLI or bytecode caches."""
    return pulumi.AssetArchive(
        {name: pulumi.FileAsset(str(path)) for name, path in code_files(root).items()}
    )
