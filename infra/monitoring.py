"""Monitoring tier: encrypted alert topic, alarms on errors, dead letters and quarantine rate."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from handlers.core import metrics as emitted
from infra import policies
from infra.config import Settings

# The names the transformer emits (handlers/core/metrics.py), never retyped here.
METRICS_NAMESPACE = emitted.NAMESPACE
QUARANTINE_RATE_METRIC = emitted.QUARANTINE_RATE
ALARM_PERIOD_SECONDS = 300


class Monitoring(pulumi.ComponentResource):
    """Alerts go to one SNS topic; a dashboard shows the pipeline at a glance."""

    def __init__(
        self,
        name: str,
        *,
        settings: Settings,
        partition: pulumi.Input[str],
        account_id: pulumi.Input[str],
        generator: aws.lambda_.Function,
        transformer: aws.lambda_.Function,
        generator_dlq: aws.sqs.Queue,
        transformer_dlq: aws.sqs.Queue,
        maintenance: aws.lambda_.Function,
        maintenance_dlq: aws.sqs.Queue,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("ecommerce:infra:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.topic = _alert_topic(name, settings, partition, account_id, child)
        alarms = _Alarms(name, settings, [self.topic.arn], child)
        self.alarms = [
            alarms.function_errors("transformer", transformer),
            alarms.function_errors("generator", generator),
            alarms.dead_letters("transformer", transformer_dlq),
            alarms.dead_letters("generator", generator_dlq),
            # A maintenance job failing quietly lets small files and metadata pile up.
            alarms.function_errors("maintenance", maintenance),
            alarms.dead_letters("maintenance", maintenance_dlq),
            alarms.quarantine_rate(),
        ]
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=f"{settings.name_prefix}-pipeline",
            dashboard_body=pulumi.Output.all(
                generator.name,
                transformer.name,
                generator_dlq.name,
                transformer_dlq.name,
                *[a.arn for a in self.alarms],
            ).apply(
                lambda v: json.dumps(
                    dashboard_body(
                        settings,
                        generator=v[0],
                        transformer=v[1],
                        generator_dlq=v[2],
                        transformer_dlq=v[3],
                        alarm_arns=list(v[4:]),
                    )
                )
            ),
            opts=child,
        )
        self.register_outputs({"alertTopic": self.topic.arn})


def _alert_topic(
    name: str,
    s: Settings,
    partition: pulumi.Input[str],
    account_id: pulumi.Input[str],
    child: pulumi.ResourceOptions,
) -> aws.sns.Topic:
    """The KMS-encrypted topic every alarm notifies, and its e-mail subscription if set."""
    alarm_prefix = f"{s.name_prefix}-"
    key = aws.kms.Key(
        f"{name}-alerts-key",
        description=f"Encrypts the {s.name_prefix} alert topic",
        enable_key_rotation=True,
        deletion_window_in_days=30 if s.protect else 7,
        policy=pulumi.Output.all(partition, account_id).apply(
            lambda v: json.dumps(
                policies.alerts_key_policy(
                    partition=v[0], region=s.region, account_id=v[1], alarm_prefix=alarm_prefix
                )
            )
        ),
        tags=s.tags,
        opts=child,
    )
    aws.kms.Alias(
        f"{name}-alerts-key-alias",
        name=f"alias/{s.name_prefix}-alerts",
        target_key_id=key.key_id,
        opts=child,
    )
    topic = aws.sns.Topic(
        f"{name}-alerts",
        name=f"{s.name_prefix}-alerts",
        kms_master_key_id=key.arn,
        tags=s.tags,
        opts=child,
    )
    if s.alert_email:
        # Email subscriptions stay pending until the recipient clicks the confirmation link.
        aws.sns.TopicSubscription(
            f"{name}-alerts-email",
            topic=topic.arn,
            protocol="email",
            endpoint=s.alert_email,
            opts=child,
        )
    return topic


class _Alarms:
    """Builds the tier's alarms: same period, actions and tags for each."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        actions: list[pulumi.Output[str]],
        child: pulumi.ResourceOptions,
    ) -> None:
        self.name = name
        self.settings = settings
        self.actions = actions
        self.child = child

    def alarm(self, suffix: str, description: str, **metric: Any) -> aws.cloudwatch.MetricAlarm:
        return aws.cloudwatch.MetricAlarm(
            f"{self.name}-{suffix}",
            name=f"{self.settings.name_prefix}-{suffix}",
            alarm_description=description,
            period=ALARM_PERIOD_SECONDS,
            evaluation_periods=1,
            treat_missing_data="notBreaching",
            alarm_actions=self.actions,
            ok_actions=self.actions,
            tags=self.settings.tags,
            opts=self.child,
            **metric,
        )

    def function_errors(
        self, role: str, function: aws.lambda_.Function
    ) -> aws.cloudwatch.MetricAlarm:
        return self.alarm(
            f"{role}-errors",
            f"The {role} function failed at least once in 5 minutes.",
            namespace="AWS/Lambda",
            metric_name="Errors",
            dimensions={"FunctionName": function.name},
            statistic="Sum",
            comparison_operator="GreaterThanThreshold",
            threshold=0,
        )

    def dead_letters(self, role: str, queue: aws.sqs.Queue) -> aws.cloudwatch.MetricAlarm:
        return self.alarm(
            f"{role}-dead-letters",
            f"Events the {role} gave up on are waiting in its dead-letter queue.",
            namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": queue.name},
            statistic="Maximum",
            comparison_operator="GreaterThanThreshold",
            threshold=0,
        )

    def quarantine_rate(self) -> aws.cloudwatch.MetricAlarm:
        s = self.settings
        return self.alarm(
            "quarantine-rate",
            f"More than {s.quarantine_rate_alarm_percent}% of records were quarantined "
            "(average over 5 minutes): the source or the contract changed.",
            namespace=METRICS_NAMESPACE,
            metric_name=QUARANTINE_RATE_METRIC,
            # The transformer's EMF dimensions, exactly: service and stack.
            dimensions=emitted.dimensions(s.stack),
            statistic="Average",
            unit="Percent",
            comparison_operator="GreaterThanThreshold",
            threshold=s.quarantine_rate_alarm_percent,
        )


def dashboard_body(
    s: Settings,
    *,
    generator: str,
    transformer: str,
    generator_dlq: str,
    transformer_dlq: str,
    alarm_arns: list[str],
) -> dict[str, Any]:
    """CloudWatch dashboard JSON, as a dict."""
    alarms = {
        "type": "alarm",
        "x": 0,
        "y": 0,
        "width": 24,
        "height": 3,
        "properties": {"title": "Alarms", "alarms": alarm_arns},
    }
    return {
        "widgets": [
            alarms,
            *_pipeline_widgets(s),
            *_function_widgets(s, generator, transformer, generator_dlq, transformer_dlq),
        ]
    }


def _metric_widget(
    s: Settings, title: str, metrics: list[list[Any]], x: int, y: int, stat: str = "Sum"
) -> dict[str, Any]:
    return {
        "type": "metric",
        "x": x,
        "y": y,
        "width": 12,
        "height": 6,
        "properties": {
            "title": title,
            "region": s.region,
            "stat": stat,
            "period": ALARM_PERIOD_SECONDS,
            "view": "timeSeries",
            "metrics": metrics,
        },
    }


def _pipeline_widgets(s: Settings) -> list[dict[str, Any]]:
    """The transformer's own figures: records and the quarantine rate."""
    pipeline = [METRICS_NAMESPACE]
    dims = [part for item in emitted.dimensions(s.stack).items() for part in item]
    return [
        _metric_widget(
            s,
            "Records in / processed / quarantined",
            [
                [*pipeline, emitted.RECORDS_IN, *dims],
                [*pipeline, emitted.RECORDS_PROCESSED, *dims],
                [*pipeline, emitted.RECORDS_QUARANTINED, *dims],
            ],
            0,
            3,
        ),
        _metric_widget(
            s, "Quarantine rate (%)", [[*pipeline, QUARANTINE_RATE_METRIC, *dims]], 12, 3, "Average"
        ),
    ]


def _function_widgets(
    s: Settings, generator: str, transformer: str, generator_dlq: str, transformer_dlq: str
) -> list[dict[str, Any]]:
    """AWS's figures for the two functions and their dead-letter queues."""

    def per_function(metric: str) -> list[list[Any]]:
        return [["AWS/Lambda", metric, "FunctionName", f] for f in (generator, transformer)]

    invocations = [
        ["AWS/Lambda", "Invocations", "FunctionName", generator],
        ["AWS/Lambda", "Errors", "FunctionName", generator],
        ["AWS/Lambda", "Invocations", "FunctionName", transformer],
        ["AWS/Lambda", "Errors", "FunctionName", transformer],
    ]
    depth = [
        ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queue]
        for queue in (generator_dlq, transformer_dlq)
    ]
    return [
        _metric_widget(s, "Invocations and errors", invocations, 0, 9),
        _metric_widget(s, "Duration (p95, ms)", per_function("Duration"), 12, 9, "p95"),
        _metric_widget(s, "Dead-letter queue depth", depth, 0, 15, "Maximum"),
        _metric_widget(s, "Throttles", per_function("Throttles"), 12, 15),
    ]
