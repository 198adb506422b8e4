"""Lambda entry point: an S3 ObjectCreated event becomes transform calls."""

from __future__ import annotations

import json
import logging
import os
from functools import cache
from typing import Any

from handlers.core.errors import StorageError
from handlers.core.events import process_event
from handlers.core.storage import S3Storage

logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))
log = logging.getLogger("pipeline.transformer")


@cache
def _storage(bucket: str) -> S3Storage:
    return S3Storage(bucket)


def _report(result: Any) -> None:
    # One structured line per object for Logs Insights, plus EMF metrics for alarms.
    print(json.dumps({"message": "transformed", **result.to_dict()}, default=str))
    from handlers.core.metrics import emit_transform_metrics

    emit_transform_metrics(result, stack=os.environ.get("STACK", "local"))


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Transform each raw object in the event; raise if any must be retried."""
    outcome = process_event(event, _storage, on_result=_report)
    if outcome.failed:
        # Fail the invocation so Lambda retries it (and finally dead-letters it);
        # objects that succeeded are skipped on retry: the table holds their versions.
        first = outcome.failed[0]
        raise StorageError("transform", first["key"], first["reason"], transient=True)
    return outcome.to_dict()
