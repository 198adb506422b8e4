"""Lambda entry point: an S3 ObjectCreated event becomes transform calls."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from handlers.core import metrics as names
from handlers.core.errors import StorageError
from handlers.core.events import process_event
from handlers.core.lambda_context import LocalContext
from handlers.core.storage import S3Storage

STACK = os.environ.get("STACK", "local")

# JSON lines on stdout: every line carries the stack, and (once the context is injected)
# the function name and request id. `pipeline.*` loggers in handlers/core write through it,
# so their `extra` fields (the source key, the reason) reach CloudWatch as JSON keys.
logger = Logger(service=names.SERVICE, level=os.environ.get("LOG_LEVEL", "INFO"))
logger.append_keys(stack=STACK)
copy_config_to_registered_loggers(source_logger=logger, include={"pipeline"})
metrics = Metrics(namespace=names.NAMESPACE, service=names.SERVICE)
metrics.set_default_dimensions(**{names.STACK_DIMENSION: STACK})


@cache
def _storage(bucket: str) -> S3Storage:
    return S3Storage(bucket)


def _report(result: Any) -> None:
    # One structured line per object for Logs Insights, plus EMF metrics for alarms.
    logger.info("transformed", extra={"key": result.source_key, **result.to_dict()})
    names.emit_transform_metrics(metrics, result)


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(clear_state=False)
def _handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    outcome = process_event(event, _storage, on_result=_report)
    metrics.add_metric(name=names.OBJECTS_FAILED, unit="Count", value=len(outcome.failed))
    if outcome.failed:
        # Fail the invocation so Lambda retries it (and finally dead-letters it);
        # objects that succeeded are skipped on retry: the table holds their versions.
        # Every object was attempted first: one bad object never blocks the others.
        first = outcome.failed[0]
        more = len(outcome.failed) - 1
        reason = first["reason"] + (f" (and {more} more objects failed)" if more else "")
        raise StorageError("transform", first["key"], reason, transient=True)
    return outcome.to_dict()


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Transform each raw object in the event; raise if any must be retried."""
    return _handle(event, context if context is not None else LocalContext.make())
