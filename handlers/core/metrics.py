"""CloudWatch EMF metrics for each transformed object, via Powertools."""

from __future__ import annotations

import os
from typing import Any

NAMESPACE = "EcommercePipeline"
SERVICE = "transformer"


def emit_transform_metrics(result: Any, *, stack: str) -> None:
    """Records in/processed/quarantined, the quarantine rate, and counts by rule."""
    from aws_lambda_powertools.metrics import Metrics, MetricUnit, single_metric

    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE)
    service = os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE)
    metrics = Metrics(namespace=namespace, service=service)
    metrics.add_dimension(name="stack", value=stack)
    metrics.add_metric(name="RecordsIn", unit=MetricUnit.Count, value=result.records_in)
    metrics.add_metric(name="RecordsProcessed", unit=MetricUnit.Count, value=result.processed)
    metrics.add_metric(name="RecordsQuarantined", unit=MetricUnit.Count, value=result.quarantined)
    metrics.add_metric(
        name="QuarantineRate", unit=MetricUnit.Percent, value=100.0 * result.quarantine_rate
    )
    metrics.flush_metrics()
    for rule, count in sorted(result.quarantined_by_check.items()):
        with single_metric(
            name="QuarantinedByRule",
            unit=MetricUnit.Count,
            value=count,
            namespace=namespace,
            default_dimensions={"service": service, "stack": stack},
        ) as metric:
            metric.add_dimension(name="rule", value=rule[:250])
