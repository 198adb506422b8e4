"""Poison files: a file whose transform keeps failing is quarantined whole after a few attempts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from handlers.core import manifest as manifests
from handlers.core.entries import build_entry, dumps_entries, entry_id
from handlers.core.errors import ObjectNotFound
from handlers.core.layout import key_id, output_base, quarantine_key, version_token
from handlers.core.screen import ENTRY_RAW_CAP
from handlers.core.storage import STATE_PREFIX, ObjectInfo, Storage
from schemas.transaction import CHECK_TRANSFORM_FAILED

# Lambda retries a failed asynchronous invocation twice: three attempts in all.
MAX_ATTEMPTS = 3
ATTEMPTS_PREFIX = f"{STATE_PREFIX}attempts/"


def attempts_key(info: ObjectInfo) -> str:
    """The small state object counting failed attempts of one version of one file."""
    return f"{ATTEMPTS_PREFIX}{key_id(info.key)}-{version_token(info.version)}.json"


def record_failure(storage: Storage, info: ObjectInfo, reason: str) -> int:
    """Count one more failed attempt of this version; how many there have been."""
    state_key = attempts_key(info)
    try:
        state: dict[str, Any] = orjson.loads(storage.read_bytes(state_key))
    except (ObjectNotFound, orjson.JSONDecodeError):
        state = {}
    attempts = int(state.get("attempts", 0)) + 1
    state = {
        "source_key": info.key,
        "source_version": info.version,
        "attempts": attempts,
        "last_reason": reason,
        "updated_at": datetime.now(UTC).isoformat(),
    }
    storage.put_bytes(state_key, orjson.dumps(state))
    return attempts


def quarantine_whole(
    storage: Storage, info: ObjectInfo, reason: str, attempts: int, now: datetime | None = None
) -> str:
    """Quarantine the file as one entry with its reason; mark the version done.

    The entry keeps the file's first bytes (not the file) and the reason; replay works
    from the raw object, which stays in raw/. Outputs of the failed attempts become the
    manifest's garbage and are deleted, so nothing half-written stays visible.
    """
    now = now or datetime.now(UTC)
    try:
        with storage.open_read(info.key, info.version) as stream:
            head = stream.read(ENTRY_RAW_CAP)
    except Exception:  # the read may be the very thing that fails
        head = b""
    base = output_base(info.key, info.version)
    out_key = quarantine_key(base, 0, info.last_modified, tag="failed")
    detail = f"transform failed {attempts} times; last error: {reason}"
    entry = build_entry(
        entry_id=entry_id(key_id(info.key), version_token(info.version), 0),
        raw=head,
        parsed=None,
        errors=[{"column": None, "check": CHECK_TRANSFORM_FAILED, "value": reason[:1000]}],
        source_key=info.key,
        source_version=info.version,
        line=None,
        record_index=0,
        quarantined_at=now.isoformat().replace("+00:00", "Z"),
        detail=detail,
    )
    previous = manifests.load(storage, info.key)
    stale = set(previous.outputs + previous.garbage) if previous else set()
    manifest = manifests.Manifest(
        source_key=info.key, version=info.version, outputs=[out_key], garbage=sorted(stale)
    )
    manifests.save(storage, manifest)
    storage.put_bytes(out_key, dumps_entries([entry]))
    manifest.status = manifests.COMPLETE
    manifest.summary = {
        "source_key": info.key,
        "source_version": info.version,
        "records_in": 1,
        "processed": 0,
        "quarantined": 1,
        "quarantined_by_check": {CHECK_TRANSFORM_FAILED: 1},
        "outputs": 1,
        "skipped": None,
    }
    manifests.save(storage, manifest)
    for old in manifest.garbage:
        if old != out_key:
            storage.delete(old)
    manifest.garbage = []
    manifests.save(storage, manifest)
    storage.delete(attempts_key(info))
    return out_key
