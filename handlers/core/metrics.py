"""CloudWatch metric names, namespace and dimensions: the handler emits them, alarms watch them."""

from __future__ import annotations

from typing import Any

# One definition, imported by handlers/transformer.py (which emits) and infra/monitoring.py
# (alarms and dashboard): an alarm cannot watch a metric nobody emits.
NAMESPACE = "EcommercePipeline"
SERVICE = "transformer"
RECORDS_IN = "RecordsIn"
RECORDS_PROCESSED = "RecordsProcessed"
RECORDS_QUARANTINED = "RecordsQuarantined"
QUARANTINE_RATE = "QuarantineRate"
QUARANTINED_BY_RULE = "QuarantinedByRule"
OBJECTS_FAILED = "ObjectsFailed"  # per invocation: objects left for Lambda's retry
COLD_START = "ColdStart"  # Powertools' own name for the cold-start metric
STACK_DIMENSION = "stack"
RULE_DIMENSION = "rule"

# What the transformer emits per transformed object, with its unit (Powertools MetricUnit).
TRANSFORM_METRICS = {
    RECORDS_IN: "Count",
    RECORDS_PROCESSED: "Count",
    RECORDS_QUARANTINED: "Count",
    QUARANTINE_RATE: "Percent",
}

# Every metric name the transformer emits in NAMESPACE (tests hold the handler to it).
EMITTED = frozenset({*TRANSFORM_METRICS, QUARANTINED_BY_RULE, OBJECTS_FAILED, COLD_START})


def transform_values(result: Any) -> dict[str, float]:
    """The value of each of TRANSFORM_METRICS for one transform result."""
    return {
        RECORDS_IN: result.records_in,
        RECORDS_PROCESSED: result.processed,
        RECORDS_QUARANTINED: result.quarantined,
        QUARANTINE_RATE: 100.0 * result.quarantine_rate,
    }


def dimensions(stack: str) -> dict[str, str]:
    """The dimensions every transformer metric carries (Powertools adds `service` itself)."""
    return {"service": SERVICE, STACK_DIMENSION: stack}


def emit_transform_metrics(metrics: Any, result: Any) -> None:
    """Add one object's figures to a Powertools `Metrics`; counts by rule go out one by one."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    for name, value in transform_values(result).items():
        metrics.add_metric(name=name, unit=MetricUnit[TRANSFORM_METRICS[name]], value=value)
    for rule, count in sorted(result.quarantined_by_check.items()):
        # A per-rule dimension must not leak onto the totals: its own EMF document.
        with single_metric(
            name=QUARANTINED_BY_RULE,
            unit=MetricUnit.Count,
            value=count,
            namespace=NAMESPACE,
            default_dimensions=metrics.default_dimensions,
        ) as metric:
            metric.add_dimension(name=RULE_DIMENSION, value=rule[:250])
