"""A Lambda function run on an EventBridge schedule: rule, invoke permission, target."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class ScheduleNames:
    """Logical names of the three resources (kept as they were: they are the URNs)."""

    rule: str
    permission: str
    target: str


def scheduled_invocation(
    names: ScheduleNames,
    *,
    parent: pulumi.Resource,
    rule_name: str,
    description: str,
    expression: str,
    enabled: bool,
    function: aws.lambda_.Function,
    retries: int,
    tags: dict[str, str],
) -> aws.cloudwatch.EventRule:
    """The rule, allowed to invoke `function` (the source ARN pins this one rule)."""
    child = pulumi.ResourceOptions(parent=parent)
    rule = aws.cloudwatch.EventRule(
        names.rule,
        name=rule_name,
        description=description,
        schedule_expression=expression,
        state="ENABLED" if enabled else "DISABLED",
        tags=tags,
        opts=child,
    )
    # A resource policy on the function, not a role: EventBridge rules invoke Lambda
    # directly, and the source ARN pins this one rule (it carries the account).
    allow = aws.lambda_.Permission(
        names.permission,
        action="lambda:InvokeFunction",
        function=function.name,
        principal="events.amazonaws.com",
        source_arn=rule.arn,
        opts=child,
    )
    aws.cloudwatch.EventTarget(
        names.target,
        rule=rule.name,
        arn=function.arn,
        retry_policy={"maximum_retry_attempts": retries, "maximum_event_age_in_seconds": 3600},
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[allow]),
    )
    return rule
