"""S3 event in, transform calls out: the logic the Lambda handler and the CLI share."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from handlers.core.errors import EventError, ObjectNotFound, StorageError
from handlers.core.storage import RAW_PREFIX, Storage

log = logging.getLogger("pipeline.transformer")


@dataclass(frozen=True)
class ObjectRef:
    """One object named by an event."""

    bucket: str
    key: str
    event_name: str = ""
    sequencer: str = ""  # S3's per-key order of events (hex); orders versions of a key


def object_refs(event: dict[str, Any]) -> list[ObjectRef]:
    """Objects created according to an S3 notification (or its EventBridge form)."""
    if not isinstance(event, dict):
        raise EventError(f"event must be a JSON object, got {type(event).__name__}")
    if event.get("Event") == "s3:TestEvent":
        return []  # sent once when the notification is configured
    if event.get("source") == "aws.s3" and isinstance(event.get("detail"), dict):
        detail = event["detail"]
        try:
            obj = detail["object"]
            sequencer = str(obj.get("sequencer") or "")
            return [ObjectRef(detail["bucket"]["name"], obj["key"], "Object Created", sequencer)]
        except (KeyError, TypeError) as e:
            raise EventError(f"EventBridge S3 event without bucket/key: {e}") from e
    records = event.get("Records")
    if not isinstance(records, list):
        raise EventError("not an S3 event: no 'Records' list")
    refs = []
    for n, record in enumerate(records):
        try:
            name = str(record.get("eventName", ""))
            s3 = record["s3"]
            # Keys arrive URL-encoded, spaces as '+'.
            key = unquote_plus(s3["object"]["key"])
            sequencer = str(s3["object"].get("sequencer") or "")
            refs.append(ObjectRef(s3["bucket"]["name"], key, name, sequencer))
        except (KeyError, TypeError, AttributeError) as e:
            raise EventError(f"Records[{n}] is not an S3 record: missing {e}") from e
    return refs


@dataclass
class EventOutcome:
    """Per-object results of one event; `failed` objects should be retried."""

    results: list[Any] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "objects": [r.to_dict() for r in self.results],
            "skipped": self.skipped,
            "failed": self.failed,
        }


def process_event(
    event: dict[str, Any],
    storage_for: Callable[[str], Storage],
    on_result: Callable[[Any], None] | None = None,
    on_progress: Callable[[Any], None] | None = None,
) -> EventOutcome:
    """Transform every raw object the event names; one failure does not stop the others."""

    outcome = EventOutcome()
    for ref in object_refs(event):
        if ref.event_name and not ref.event_name.startswith(("ObjectCreated", "Object Created")):
            outcome.skipped.append({"key": ref.key, "reason": f"event {ref.event_name}"})
            continue
        if not ref.key.startswith(RAW_PREFIX):
            outcome.skipped.append({"key": ref.key, "reason": f"outside {RAW_PREFIX}"})
            continue
        result = _transform_isolated(ref, storage_for, outcome, on_progress)
        if result is None:
            continue
        outcome.results.append(result)
        if on_result is not None:
            on_result(result)
    return outcome


def _transform_isolated(
    ref: ObjectRef,
    storage_for: Callable[[str], Storage],
    outcome: EventOutcome,
    on_progress: Callable[[Any], None] | None,
) -> Any:
    """One object's transform; any failure is confined to it (noted in `outcome`).

    Storage errors are retried as they are. Any other error is the file's own doing: it
    is counted under _state/attempts/, and after MAX_ATTEMPTS the file is quarantined
    whole with its reason, so a poison file neither loops forever nor blocks the others.
    """
    from handlers.core.transform import transform_object  # heavy: imported on first use

    storage = storage_for(ref.bucket)
    try:
        return transform_object(storage, ref.key, sequencer=ref.sequencer, on_progress=on_progress)
    except ObjectNotFound:
        # Deleted (or overwritten and deleted) before we got to it: nothing to do.
        outcome.skipped.append({"key": ref.key, "reason": "object no longer exists"})
    except StorageError as e:
        log.error("transform failed", extra={"key": ref.key, "reason": e.reason})
        outcome.failed.append({"key": ref.key, "reason": e.reason})
    except Exception as e:  # isolation is the point: any error fails one object only
        reason = f"{type(e).__name__}: {e}"[:1000]
        log.exception("transform crashed", extra={"key": ref.key, "reason": reason})
        try:
            return _count_failure(storage, ref, reason, outcome)
        except StorageError as counted:
            outcome.failed.append({"key": ref.key, "reason": f"{reason}; {counted.reason}"})
    return None


def _count_failure(storage: Storage, ref: ObjectRef, reason: str, outcome: EventOutcome) -> Any:
    """Note a failed attempt; the whole-file quarantine's result once attempts run out."""
    from handlers.core.poison import MAX_ATTEMPTS, quarantine_whole, record_failure

    info = storage.stat(ref.key)
    attempts = record_failure(storage, info, reason)
    if attempts < MAX_ATTEMPTS:
        outcome.failed.append({"key": ref.key, "reason": f"{reason} (attempt {attempts})"})
        return None
    return quarantine_whole(storage, info, reason, attempts, sequencer=ref.sequencer)
