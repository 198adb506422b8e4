"""Pulumi program: one isolated copy of the pipeline per stack (`dev`, `prod`)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.catalog import Catalog
from infra.config import read_stack_settings
from infra.functions import Functions
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

storage = Storage(f"{prefix}-data", settings)
functions = Functions(
    f"{prefix}-functions",
    settings=settings,
    layers=layers,
    bucket_name=storage.bucket_name,
    bucket_arn=storage.bucket_arn,
    kms_key_arn=storage.kms_key_arn,
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
catalog = Catalog(
    f"{prefix}-catalog",
    settings=settings,
    partition=partition,
    account_id=account_id,
    bucket_name=storage.bucket_name,
    bucket_arn=storage.bucket_arn,
    kms_key_arn=storage.kms_key_arn,
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
)

pulumi.export("bucket", storage.bucket_name)
pulumi.export("prefixes", storage.prefixes)
pulumi.export("kmsKeyArn", storage.kms_key_arn)
pulumi.export(
    "functions",
    {
        "generator": functions.generator.function.name,
        "transformer": functions.transformer.function.name,
    },
)
pulumi.export(
    "deadLetterQueues",
    {
        "generator": functions.generator.dead_letters.url,
        "transformer": functions.transformer.dead_letters.url,
    },
)
pulumi.export("glueDatabase", catalog.database.name)
pulumi.export(
    "glueTables",
    {"transactions": catalog.transactions.name, "quarantine": catalog.quarantine.name},
)
pulumi.export("partitionDiscovery", settings.partition_discovery)
pulumi.export("crawler", catalog.crawler.name if catalog.crawler is not None else None)
pulumi.export("athenaWorkgroup", catalog.workgroup.name)
pulumi.export("namedQueries", [query.name for query in catalog.named_queries])
pulumi.export("alertTopic", monitoring.topic.arn)
pulumi.export("dashboard", monitoring.dashboard.dashboard_name)
