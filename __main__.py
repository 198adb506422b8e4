"""Pulumi program: one isolated copy of the pipeline per stack (`dev`, `prod`)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.catalog import Catalog
from infra.config import read_stack_settings
from infra.functions import Functions, Targets
from infra.guards import Guards
from infra.maintenance import MaintenanceSchedule
from infra.monitoring import Monitoring
from infra.packaging import LayerMissing, resolve_layers
from infra.storage import Storage
from infra.triggers import Triggers

settings = read_stack_settings()
try:
    layers = resolve_layers(
        settings.root,
        {arch: settings.layer_zip(arch) for arch in settings.architectures},
        runtime=settings.lambda_runtime,
    )
except LayerMissing as error:
    raise pulumi.RunError(str(error)) from None

account_id = aws.get_caller_identity_output().account_id
partition = aws.get_partition_output().partition
prefix = settings.name_prefix

storage = Storage(f"{prefix}-data", settings, account_id=account_id)
catalog = Catalog(
    f"{prefix}-catalog",
    settings=settings,
    bucket_name=storage.bucket_name,
    results_bucket_name=storage.athena_results.name,
    kms_key_arn=storage.kms_key_arn,
    account_id=account_id,
)
functions = Functions(
    f"{prefix}-functions",
    settings=settings,
    layers=layers,
    artifacts_bucket=storage.artifacts.name,
    targets=Targets(
        partition=partition,
        account_id=account_id,
        bucket_name=storage.bucket_name,
        bucket_arn=storage.bucket_arn,
        kms_key_arn=storage.kms_key_arn,
        database=catalog.database.name,
        table=catalog.transactions.name,
    ),
)
Guards(
    f"{prefix}-guards",
    settings=settings,
    partition=partition,
    account_id=account_id,
    kms_key=storage.kms_key,
    athena_results=storage.athena_results,
    artifacts=storage.artifacts,
    role_arns=[f.role.arn for f in functions.all.values()],
)
Triggers(
    f"{prefix}-triggers",
    settings=settings,
    account_id=account_id,
    bucket_name=storage.bucket_name,
    bucket_arn=storage.bucket_arn,
    generator=functions.generator.function,
    transformer=functions.transformer.function,
)
maintenance = MaintenanceSchedule(
    f"{prefix}-maintenance", settings=settings, function=functions.maintenance.function
)
monitoring = Monitoring(
    f"{prefix}-monitoring",
    settings=settings,
    partition=partition,
    account_id=account_id,
    generator=functions.generator.function,
    transformer=functions.transformer.function,
    generator_dlq=functions.generator.dead_letters,
    transformer_dlq=functions.transformer.dead_letters,
    maintenance=functions.maintenance.function,
    maintenance_dlq=functions.maintenance.dead_letters,
)

pulumi.export("bucket", storage.bucket_name)
pulumi.export("prefixes", storage.prefixes)
pulumi.export("kmsKeyArn", storage.kms_key_arn)
pulumi.export("athenaResultsBucket", storage.athena_results.name)
pulumi.export("artifactsBucket", storage.artifacts.name)
pulumi.export(
    "accessLogBucket", storage.access_logs.name if storage.access_logs is not None else None
)
pulumi.export("functions", {role: f.function.name for role, f in functions.all.items()})
pulumi.export("deadLetterQueues", {role: f.dead_letters.url for role, f in functions.all.items()})
pulumi.export("glueDatabase", catalog.database.name)
pulumi.export(
    "glueTables",
    {"transactions": catalog.transactions.name, "quarantine": catalog.quarantine.name},
)
pulumi.export("icebergMetadataV0", catalog.iceberg.metadata_location)
pulumi.export("maintenanceSchedule", maintenance.rule.name)
pulumi.export("athenaWorkgroup", catalog.workgroup.name)
pulumi.export("namedQueries", [query.name for query in catalog.named_queries])
pulumi.export("alertTopic", monitoring.topic.arn)
pulumi.export("dashboard", monitoring.dashboard.dashboard_name)
