"""Poison files: a file whose transform keeps failing is quarantined whole after a few attempts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

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
    storage: Storage,
    info: ObjectInfo,
    reason: str,
    attempts: int,
    *,
    sequencer: str = "",
    now: datetime | None = None,
) -> Any:
    """Quarantine the file as one entry with its reason, committed as the key's version.

    The entry keeps the file's first bytes (not the file) and the reason; replay works
    from the raw object, which stays in raw/. The commit records the version in the table
    like any transform (no rows, one entry), so it replaces the key's earlier rows, a
    redelivery is a no-op, and the tools show the entry. Entry files of the failed
    attempts are deleted; their uncommitted data files are orphans `maintain` removes.
    """
    from handlers.core import commit as commits
    from handlers.core.transform import TransformResult, commit_outputs

    now = now or datetime.now(UTC)
    out_key = quarantine_key(output_base(info.key, info.version), 0, info.last_modified, "failed")
    storage.put_bytes(out_key, dumps_entries([_entry(storage, info, reason, attempts, now)]))
    result = TransformResult(source_key=info.key, source_version=info.version)
    result.records_in = result.quarantined = 1
    result.quarantined_by_check[CHECK_TRANSFORM_FAILED] = 1
    result.outputs = [out_key]
    order = commits.order_token(sequencer or None, info)
    decision = commit_outputs(storage, info, order, [], [out_key], result)
    if decision.action == commits.SUPERSEDED:
        storage.delete(out_key)  # a newer version of the key holds it now
        result.skipped = decision.action
    _remove_attempt_outputs(storage, info, keep=out_key)
    storage.delete(attempts_key(info))
    return result


def _entry(
    storage: Storage, info: ObjectInfo, reason: str, attempts: int, now: datetime
) -> dict[str, Any]:
    try:
        with storage.open_read(info.key, info.version) as stream:
            head = stream.read(ENTRY_RAW_CAP)
    except Exception:  # the read may be the very thing that fails
        head = b""
    return build_entry(
        entry_id=entry_id(key_id(info.key), version_token(info.version), 0),
        raw=head,
        parsed=None,
        errors=[{"column": None, "check": CHECK_TRANSFORM_FAILED, "value": reason[:1000]}],
        source_key=info.key,
        source_version=info.version,
        line=None,
        record_index=0,
        quarantined_at=now.isoformat().replace("+00:00", "Z"),
        detail=f"transform failed {attempts} times; last error: {reason}",
    )


def _remove_attempt_outputs(storage: Storage, info: ObjectInfo, *, keep: str) -> None:
    """Entry files the failed attempts of this version wrote before they crashed."""
    first = quarantine_key(output_base(info.key, info.version), 0, info.last_modified)
    prefix = first.rsplit(".c", 1)[0] + "."
    for stale in storage.list(prefix):
        if stale.key != keep:
            storage.delete(stale.key)
