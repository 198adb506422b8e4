"""Triggers tier: a schedule runs the generator; new raw objects run the transformer."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from handlers.core.layout import trigger_suffixes
from infra import policies
from infra.config import Settings

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
        child = pulumi.ResourceOptions(parent=self)
        schedule = aws.cloudwatch.EventRule(
            f"{name}-schedule",
            name=f"{s.name_prefix}-generator-schedule",
            description="Runs the generator: one batch of transactions per tick",
            schedule_expression=s.schedule_expression,
            state="ENABLED" if s.schedule_enabled else "DISABLED",
            tags=s.tags,
            opts=child,
        )
        allow_events = aws.lambda_.Permission(
            f"{name}-events-invoke-generator",
            action="lambda:InvokeFunction",
            function=generator.name,
            principal="events.amazonaws.com",
            source_arn=schedule.arn,
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-schedule-target",
            rule=schedule.name,
            arn=generator.arn,
            retry_policy={"maximum_retry_attempts": 2, "maximum_event_age_in_seconds": 3600},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[allow_events]),
        )
        return schedule

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
