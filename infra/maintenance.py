"""Maintenance tier: the schedule that runs the Iceberg maintenance function."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.config import Settings
from infra.schedules import ScheduleNames, scheduled_invocation


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
        self.rule = scheduled_invocation(
            ScheduleNames(f"{name}-rule", f"{name}-invoke", f"{name}-target"),
            parent=self,
            rule_name=f"{s.name_prefix}-maintenance-schedule",
            description="Compacts the Iceberg table, expires snapshots, removes orphan files",
            expression=s.maintenance.schedule_expression,
            enabled=s.maintenance.enabled,
            function=function,
            # A missed run is picked up by the next one; retrying late only adds conflicts.
            retries=0,
            tags=s.tags,
        )
        self.register_outputs({"schedule": self.rule.name})
