"""Maintenance tier: the schedule that runs the Iceberg maintenance function."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.config import Settings


class MaintenanceSchedule(pulumi.ComponentResource):
    """EventBridge rule -> maintenance function, like the generator's schedule."""

    def __init__(
        self,
        name: str,
        *,
        settings: Settings,
        function: aws.lambda_.Function,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("ecommerce:infra:MaintenanceSchedule", name, None, opts)
        s = settings
        child = pulumi.ResourceOptions(parent=self)
        self.rule = aws.cloudwatch.EventRule(
            f"{name}-rule",
            name=f"{s.name_prefix}-maintenance-schedule",
            description="Compacts the Iceberg table, expires snapshots, removes orphan files",
            schedule_expression=s.maintenance.schedule_expression,
            state="ENABLED" if s.maintenance.enabled else "DISABLED",
            tags=s.tags,
            opts=child,
        )
        # A resource policy on the function, not a role: EventBridge rules invoke Lambda
        # directly, and the source ARN pins this one rule (it carries the account).
        allow = aws.lambda_.Permission(
            f"{name}-invoke",
            action="lambda:InvokeFunction",
            function=function.name,
            principal="events.amazonaws.com",
            source_arn=self.rule.arn,
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-target",
            rule=self.rule.name,
            arn=function.arn,
            # A missed run is picked up by the next one; retrying late only adds conflicts.
            retry_policy={"maximum_retry_attempts": 0, "maximum_event_age_in_seconds": 3600},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[allow]),
        )
        self.register_outputs({"schedule": self.rule.name})
