"""The quarantine entry format: one JSON line per bad record, with everything needed to fix it."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

import orjson

from handlers.core.screen import ENTRY_RAW_CAP
from schemas import SCHEMA_VERSION

# A Decimal is written in plain digits only while that stays short; `1e999999999` in
# plain digits would be a gigabyte. Beyond it, JSON's exponent form (still exact).
_PLAIN_EXPONENT = 64


def jsonable(value: Any) -> Any:
    """A decoded JSON value ready for orjson, with Decimals written from their exact digits."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            return orjson.Fragment(f'"{value}"')
        exponent = value.as_tuple().exponent
        plain = isinstance(exponent, int) and abs(exponent) <= _PLAIN_EXPONENT
        return orjson.Fragment(format(value, "f") if plain else format(value, "E"))
    if type(value) is int and not -(2**63) <= value < 2**64:
        return orjson.Fragment(str(value))  # JSON has no integer limit; orjson does
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, str) and not value.isascii():
        # Lone surrogates (from "\ud800" escapes) can't be UTF-8; keep them visible.
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _capped(value: Any) -> Any:
    """An error's quoted value, cut to ENTRY_RAW_CAP characters if it is a huge string."""
    if isinstance(value, str | bytes) and len(value) > ENTRY_RAW_CAP:
        return value[:ENTRY_RAW_CAP] + ("…" if isinstance(value, str) else b"")
    return value


def entry_id(key_id: str, version_token: str, record_index: int) -> str:
    """Stable identity of a quarantined record across rewrites and replays."""
    return f"{key_id}-{version_token}-{record_index}"


def build_entry(
    *,
    entry_id: str,
    raw: bytes,
    parsed: dict[str, Any] | None,
    errors: Iterable[dict[str, Any]],
    source_key: str,
    source_version: str,
    line: int | None,
    record_index: int,
    quarantined_at: str,
    detail: str = "",
) -> dict[str, Any]:
    """One quarantine entry. `record` is the original object, or the raw text if unparsed.

    A record longer than ENTRY_RAW_CAP keeps only its first ENTRY_RAW_CAP bytes, as raw
    text (`record_truncated`, `record_bytes`): one entry never holds a huge line.
    """
    entry: dict[str, Any] = {"entry_id": entry_id}
    if len(raw) > ENTRY_RAW_CAP:
        entry["record_truncated"] = True
        entry["record_bytes"] = len(raw)
        raw, parsed = raw[:ENTRY_RAW_CAP], None
    if parsed is not None:
        # The original text, verbatim: exact digits, key order and all.
        entry["record"] = orjson.Fragment(raw)
        entry["record_is_raw_text"] = False
    else:
        text = raw.decode("utf-8", "replace")
        entry["record"] = text
        entry["record_is_raw_text"] = True
        if text.encode("utf-8") != raw:
            entry["record_base64"] = base64.b64encode(raw).decode("ascii")
    entry["errors"] = [
        {"column": e["column"], "check": e["check"], "value": jsonable(_capped(e.get("value")))}
        for e in errors
    ]
    entry["source_key"] = source_key
    entry["source_version"] = source_version
    entry["line"] = line
    entry["record_index"] = record_index
    entry["quarantined_at"] = quarantined_at
    entry["schema_version"] = SCHEMA_VERSION
    if detail:
        entry["detail"] = detail
    return entry


def dumps_entries(entries: Iterable[dict[str, Any]]) -> bytes:
    """JSON Lines bytes of entries, built up as they come (never a list of them all)."""
    return b"".join(dumps_batches(entries, None))


def dumps_batches(entries: Iterable[dict[str, Any]], size: int | None) -> Iterator[bytes]:
    """JSON Lines bytes of entries, `size` entries at a time (all at once for None)."""
    out = io.BytesIO()
    held = 0
    for entry in entries:
        out.write(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE))
        held += 1
        if held == size:
            yield out.getvalue()
            out, held = io.BytesIO(), 0
    if held:
        yield out.getvalue()


_EXACT = json.JSONDecoder(parse_float=Decimal)


def decode_exact(text: bytes | str) -> Any:
    """JSON with fractions as Decimal, so quarantined and replayed values stay exact."""
    return _EXACT.decode(text.decode("utf-8") if isinstance(text, bytes) else text)


def load_entries(data: bytes) -> list[dict[str, Any]]:
    """Entries of a quarantine file, numbers kept exact (Decimal), so replay sees the original."""
    return [decode_exact(line) for line in data.splitlines() if line.strip()]


def original_bytes(entry: dict[str, Any]) -> bytes:
    """The record as JSON text again (exact values), or its raw bytes if it never parsed."""
    if not entry.get("record_is_raw_text"):
        return orjson.dumps(jsonable(entry["record"]))
    if "record_base64" in entry:
        return base64.b64decode(entry["record_base64"])
    return str(entry["record"]).encode("utf-8")
