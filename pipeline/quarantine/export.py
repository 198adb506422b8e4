"""`show` and `export`: entries as flat CSV rows or JSON lines."""

from __future__ import annotations

from decimal import Decimal
from typing import IO, Any

import orjson

from handlers.core.entries import jsonable
from handlers.core.errors import PipelineError
from pipeline.quarantine.model import Item, QuarantineFile, entry_rules
from pipeline.quarantine.store import record_text

EXPORT_FIELDS = (
    "entry_id",
    "landed_day",
    "rules",
    "errors",
    "source_key",
    "source_version",
    "line",
    "record_index",
    "quarantined_at",
    "schema_version",
    "record_is_raw_text",
    "record",
    "quarantine_key",
)


def export_row(qfile: QuarantineFile, item: Item) -> dict[str, Any]:
    """A flat row for CSV: one column per entry field, plus the record's contract fields."""
    from schemas import FIELDS

    entry = item.entry
    assert entry is not None
    record = entry.get("record")
    row: dict[str, Any] = {
        "entry_id": entry["entry_id"],
        "landed_day": qfile.day.isoformat(),
        "rules": "; ".join(entry_rules(entry)),
        "errors": orjson.dumps(jsonable(entry["errors"])).decode(),
        "source_key": entry["source_key"],
        "source_version": entry["source_version"],
        "line": entry.get("line"),
        "record_index": entry.get("record_index"),
        "quarantined_at": entry.get("quarantined_at"),
        "schema_version": entry.get("schema_version"),
        "record_is_raw_text": bool(entry.get("record_is_raw_text")),
        "record": record if isinstance(record, str) else record_text(entry, item.raw).decode(),
        "quarantine_key": qfile.key,
    }
    for name in FIELDS:
        value = record.get(name) if isinstance(record, dict) else None
        row[f"record.{name}"] = _cell(value)
    return row


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    return orjson.dumps(jsonable(value)).decode()


def export_json_line(qfile: QuarantineFile, item: Item) -> bytes:
    """The entry as stored (record verbatim), plus where it is: one JSON line."""
    entry = item.entry
    assert entry is not None
    out = jsonable(dict(entry))
    if not entry.get("record_is_raw_text"):
        out["record"] = orjson.Fragment(record_text(entry, item.raw))
    out["quarantine_key"] = qfile.key
    out["landed_day"] = qfile.day.isoformat()
    return orjson.dumps(out) + b"\n"


def open_output(path: str) -> IO[bytes]:
    """A binary stream for `path`, or stdout for "-"."""
    import sys

    if path == "-":
        return sys.stdout.buffer
    from pathlib import Path

    try:
        return Path(path).open("wb")
    except OSError as e:
        raise PipelineError(f"cannot write {path}: {e.strerror or e}") from e
