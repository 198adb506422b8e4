"""Functions tier: the generator and the transformer, each with its own role, logs and DLQ."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra import policies
from infra.config import FunctionSettings, Settings
from infra.packaging import LayerArtifact, code_files

METRICS_NAMESPACE = "EcommercePipeline"
# Failed async events stay in the dead-letter queue for SQS's maximum, 14 days.
DLQ_RETENTION_SECONDS = 14 * 24 * 3600


@dataclass(frozen=True)
class FunctionSpec:
    """What differs between the two functions."""

    role: str  # "generator" | "transformer"
    handler: str
    sizing: FunctionSettings
    environment: dict[str, pulumi.Input[str]]
    policy: Callable[..., dict]


class PipelineFunction(pulumi.ComponentResource):
    """One Lambda function with everything it owns: role, policy, log group, DLQ."""

    def __init__(
        self,
        name: str,
        *,
        spec: FunctionSpec,
        settings: Settings,
        code: pulumi.Archive,
        layer: aws.lambda_.LayerVersion,
        bucket_arn: pulumi.Output[str],
        kms_key_arn: pulumi.Output[str] | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("ecommerce:infra:PipelineFunction", name, None, opts)
        s = settings
        child = pulumi.ResourceOptions(parent=self)
        function_name = f"{s.name_prefix}-{spec.role}"

        # Created before the function so Lambda never auto-creates it without retention.
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/lambda/{function_name}",
            retention_in_days=s.log_retention_days,
            tags=s.tags,
            opts=child,
        )
        self.dead_letters = aws.sqs.Queue(
            f"{name}-dlq",
            name=f"{function_name}-dlq",
            message_retention_seconds=DLQ_RETENTION_SECONDS,
            sqs_managed_sse_enabled=True,
            tags=s.tags,
            opts=child,
        )
        self.role = aws.iam.Role(
            f"{name}-role",
            description=f"Execution role of {function_name}",
            assume_role_policy=json.dumps(policies.assume_role("lambda.amazonaws.com")),
            tags=s.tags,
            opts=child,
        )
        arns = [bucket_arn, self.log_group.arn, self.dead_letters.arn]
        if kms_key_arn is not None:
            arns.append(kms_key_arn)
        role_policy = aws.iam.RolePolicy(
            f"{name}-policy",
            role=self.role.id,
            policy=pulumi.Output.all(*arns).apply(
                lambda values: json.dumps(
                    spec.policy(
                        bucket_arn=values[0],
                        log_group_arn=values[1],
                        queue_arn=values[2],
                        kms_key_arn=values[3] if len(values) > 3 else None,
                    )
                )
            ),
            opts=child,
        )

        sizing = spec.sizing
        self.function = aws.lambda_.Function(
            name,
            name=function_name,
            role=self.role.arn,
            runtime=s.lambda_runtime,
            handler=spec.handler,
            code=code,
            layers=[layer.arn],
            architectures=[sizing.architecture],
            memory_size=sizing.memory_mb,
            timeout=sizing.timeout_seconds,
            reserved_concurrent_executions=sizing.reserved_concurrency,
            environment={"variables": spec.environment},
            logging_config={"log_format": "Text", "log_group": self.log_group.name},
            tags=s.tags,
            # The policy must exist before the first invocation can write logs.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role_policy]),
        )
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


class Functions(pulumi.ComponentResource):
    """The dependency layer(s) and both functions."""

    def __init__(
        self,
        name: str,
        *,
        settings: Settings,
        layers: dict[str, LayerArtifact],
        bucket_name: pulumi.Output[str],
        bucket_arn: pulumi.Output[str],
        kms_key_arn: pulumi.Output[str] | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("ecommerce:infra:Functions", name, None, opts)
        s = settings
        child = pulumi.ResourceOptions(parent=self)

        self.layers: dict[str, aws.lambda_.LayerVersion] = {}
        for arch, artifact in sorted(layers.items()):
            # Lambda takes at most 50 MB zipped by direct upload; the layer goes via S3.
            # The key carries the content hash, so a rebuilt layer is a new object and
            # a new layer version, and an unchanged one is left alone.
            upload = aws.s3.BucketObjectv2(
                f"{name}-layer-{arch}-zip",
                bucket=bucket_name,
                key=f"{policies.ARTIFACTS}layers/deps-{arch}-{artifact.sha256[:16]}.zip",
                source=pulumi.FileAsset(str(artifact.zip_path)),
                source_hash=artifact.sha256,
                tags=s.tags,
                opts=child,
            )
            self.layers[arch] = aws.lambda_.LayerVersion(
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

        code = function_code(s.root)
        common = {"STACK": s.stack, "LOG_LEVEL": s.log_level}
        specs = (
            FunctionSpec(
                role="generator",
                handler="handlers.generator.handler",
                sizing=s.generator,
                environment={
                    **common,
                    "POWERTOOLS_SERVICE_NAME": "generator",
                    "LAKE_URL": pulumi.Output.concat("s3://", bucket_name),
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
                    "POWERTOOLS_SERVICE_NAME": "transformer",
                    "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                },
                policy=policies.transformer_policy,
            ),
        )
        built = {
            spec.role: PipelineFunction(
                f"{s.name_prefix}-{spec.role}",
                spec=spec,
                settings=s,
                code=code,
                layer=self.layers[spec.sizing.architecture],
                bucket_arn=bucket_arn,
                kms_key_arn=kms_key_arn,
                opts=child,
            )
            for spec in specs
        }
        self.generator = built["generator"]
        self.transformer = built["transformer"]
        self.register_outputs(
            {
                "generator": self.generator.function.name,
                "transformer": self.transformer.function.name,
            }
        )


def function_code(root: Path) -> pulumi.AssetArchive:
    """Only `handlers/` and `schemas/` source: no tests, infra, CLI or bytecode caches."""
    return pulumi.AssetArchive(
        {name: pulumi.FileAsset(str(path)) for name, path in code_files(root).items()}
    )
