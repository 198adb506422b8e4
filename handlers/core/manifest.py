"""Per-source manifests: which outputs belong to which version, so reruns clean up."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from handlers.core.errors import ObjectNotFound
from handlers.core.layout import manifest_key
from handlers.core.storage import Storage

IN_PROGRESS = "in_progress"
COMPLETE = "complete"


@dataclass
class Manifest:
    """What the lake holds for one source key.

    `outputs` are the objects of the current `version`; `garbage` are objects of earlier
    versions (or abandoned attempts) still to be deleted. Writing the manifest *before*
    the outputs it lists means a crash never leaves an object nobody knows about.
    """

    source_key: str
    version: str
    status: str = IN_PROGRESS
    outputs: list[str] = field(default_factory=list)
    garbage: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    updated_at: str = ""

    def to_bytes(self) -> bytes:
        self.updated_at = datetime.now(UTC).isoformat()
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)


def load(storage: Storage, source_key: str) -> Manifest | None:
    """The manifest of `source_key`, or None if it was never processed."""
    try:
        data = storage.read_bytes(manifest_key(source_key))
    except ObjectNotFound:
        return None
    try:
        fields = orjson.loads(data)
        return Manifest(**{k: fields[k] for k in Manifest.__dataclass_fields__ if k in fields})
    except (orjson.JSONDecodeError, TypeError, KeyError):
        # A corrupt manifest must not wedge the key: reprocess from scratch.
        return None


def save(storage: Storage, manifest: Manifest) -> None:
    storage.put_bytes(manifest_key(manifest.source_key), manifest.to_bytes())
