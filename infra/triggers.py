"""Triggers tier: a schedule runs the generator; new raw objects run the transformer."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from handlers.core.layout import trigger_suffixes
from infra import policies
from infra.config import Settings
from infra.schedules import ScheduleNames, scheduled_invocation

# Derived from the transformer's own list of raw file names: every name it
# recognises triggers it, and no two filters overlap (S3 rejects that).
RAW_SUFFIXES = trigger_suffixes()


class Triggers(pulumi.ComponentResource):
    """EventBridge schedule -> generator; `raw/` object created -> transformer."""

    def __init__(
        self,
        name: str,
        *,
        settings: Settings,
        account_id: pulumi.Input[str],
        bucket_name: pulumi.Output[str],
        bucket_arn: pulumi.Output[str],
        generator: aws.lambda_.Function,
        transformer: aws.lambda_.Function,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("ecommerce:infra:Triggers", name, None, opts)
        self.schedule = self._schedule(name, settings, generator)
        self.allow_s3, self.notification = self._raw_created(
            name, account_id, bucket_name, bucket_arn, transformer
        )
        self.register_outputs({"schedule": self.schedule.name})

    def _schedule(
        self, name: str, s: Settings, generator: aws.lambda_.Function
    ) -> aws.cloudwatch.EventRule:
        """The EventBridge rule that runs the generator, allowed to invoke it."""
        return scheduled_invocation(
            ScheduleNames(
                f"{name}-schedule", f"{name}-events-invoke-generator", f"{name}-schedule-target"
            ),
            parent=self,
            rule_name=f"{s.name_prefix}-generator-schedule",
            description="Runs the generator: one batch of transactions per tick",
            expression=s.schedule_expression,
            enabled=s.schedule_enabled,
            function=generator,
            retries=2,
            tags=s.tags,
        )

    def _raw_created(
        self,
        name: str,
        account_id: pulumi.Input[str],
        bucket_name: pulumi.Output[str],
        bucket_arn: pulumi.Output[str],
        transformer: aws.lambda_.Function,
    ) -> tuple[aws.lambda_.Permission, aws.s3.BucketNotification]:
        """The bucket notification that runs the transformer, and S3's permission to."""
        allow_s3 = aws.lambda_.Permission(
            f"{name}-s3-invoke-transformer",
            action="lambda:InvokeFunction",
            function=transformer.name,
            principal="s3.amazonaws.com",
            source_arn=bucket_arn,
            # Bucket ARNs carry no account: pin the caller so a same-named bucket
            # elsewhere cannot invoke the function.
            source_account=account_id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        notification = aws.s3.BucketNotification(
            f"{name}-raw-created",
            bucket=bucket_name,
            lambda_functions=[
                {
                    "id": f"raw-{suffix.strip('.').replace('.', '-')}",
                    "lambda_function_arn": transformer.arn,
                    "events": ["s3:ObjectCreated:*"],
                    "filter_prefix": policies.RAW,
                    "filter_suffix": suffix,
                }
                for suffix in RAW_SUFFIXES
            ],
            # S3 test-invokes the function when the notification is saved: without the
            # permission in place first, the first `pulumi up` fails.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[allow_s3]),
        )
        return allow_s3, notification
