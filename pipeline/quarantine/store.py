"""Listing and reading quarantine files: entries in order, unreadable lines kept and reported."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from handlers.core.entries import decode_exact, jsonable, original_bytes
from handlers.core.errors import ObjectNotFound, PipelineError, StorageError
from handlers.core.layout import parse_quarantine_key
from handlers.core.storage import QUARANTINE_PREFIX, Storage
from pipeline.quarantine.model import Item, Problem, QuarantineFile, QuarantineRef, Selection
from pipeline.quarantine.state import TableState, load_state

_WORKERS = 8
_REQUIRED = ("entry_id", "record", "errors", "source_key", "source_version")


def quarantine_ref(key: str) -> QuarantineRef | None:
    """What a quarantine key says (day, source key id, chunk), or None if it is foreign."""
    parsed = parse_quarantine_key(key)
    if parsed is None:
        return None
    name = parsed.name
    if name is None:
        return QuarantineRef(key, parsed.day, None, None, 0, "")
    return QuarantineRef(
        key, parsed.day, name.base, name.key_id, name.chunk, name.tag, name.version_token
    )


def list_quarantine(
    storage: Storage,
    selection: Selection,
    problems: list[Problem],
    state: TableState | None = None,
) -> list[QuarantineRef]:
    """Quarantine objects whose landing day is selected, in key order; foreign objects noted.

    With the table's `state`, files of versions the table does not hold are left out.
    """
    refs = []
    for info in storage.list(QUARANTINE_PREFIX):
        ref = quarantine_ref(info.key)
        if ref is None:
            problems.append(
                Problem(
                    info.key,
                    "not a quarantine file (expected dt=YYYY-MM-DD/*.jsonl); ignored",
                    "warning",
                )
            )
            continue
        if selection.day_in_range(ref.day) and not (state and state.is_stale(ref)):
            refs.append(ref)
    return refs


def parse_quarantine(ref: QuarantineRef, data: bytes, problems: list[Problem]) -> QuarantineFile:
    """Entries of a quarantine object; unreadable lines are kept (verbatim) and reported."""
    items: list[Item] = []
    bad = 0
    for n, line in enumerate(data.split(b"\n"), 1):
        raw = line.rstrip(b"\r")
        if not raw.strip():
            continue
        entry, reason = _read_line(raw)
        if reason:
            bad += 1
            if bad <= 3:
                problems.append(Problem(ref.key, f"line {n}: {reason}"))
        items.append(Item(n, raw, entry))
    if bad > 3:
        problems.append(Problem(ref.key, f"{bad - 3} more unreadable lines"))
    return QuarantineFile(ref.key, ref.day, items, ref.base, ref.keyid, ref.chunk, ref.tag)


def _read_line(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    """(entry, "") for a good line, else (None, why it is not an entry)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    try:
        value = decode_exact(text)
    except (ValueError, RecursionError):
        return None, "not JSON (truncated or garbled)"
    if not _is_entry(value):
        return None, f"JSON but not a quarantine entry (needs {', '.join(_REQUIRED)})"
    return value, ""


def _is_entry(value: Any) -> bool:
    if not isinstance(value, dict) or any(k not in value for k in _REQUIRED):
        return False
    if not isinstance(value["entry_id"], str) or not isinstance(value["errors"], list):
        return False
    if not all(isinstance(e, dict) and "check" in e for e in value["errors"]):
        return False
    return isinstance(value["source_key"], str) and isinstance(value["source_version"], str)


def _why(error: PipelineError) -> str:
    """An error's detail without repeating the key the problem is filed under."""
    if isinstance(error, StorageError):
        return f"{error.operation} failed: {error.detail}"
    return error.reason


def _fetch(
    storage: Storage, keys: list[str], read: Callable[[str], Any], workers: int = _WORKERS
) -> Iterator[tuple[str, Any | PipelineError]]:
    """(key, read(key) or the error) in key order, reading a bounded window in parallel."""
    if not keys:
        return

    def guarded(key: str) -> Any:
        try:
            return read(key)
        except PipelineError as e:
            return e

    storage.prepare_threads()
    window = workers * 4
    with ThreadPoolExecutor(max_workers=min(workers, len(keys))) as pool:
        for start in range(0, len(keys), window):
            part = keys[start : start + window]
            yield from zip(part, pool.map(guarded, part), strict=True)


def read_quarantine(
    storage: Storage, refs: list[QuarantineRef], problems: list[Problem]
) -> Iterator[QuarantineFile]:
    """Parsed quarantine files, in the order of `refs`; unreadable objects reported, skipped."""
    by_key = {r.key: r for r in refs}
    for key, data in _fetch(storage, list(by_key), storage.read_bytes):
        if isinstance(data, ObjectNotFound):
            continue  # removed since listing (a concurrent replay or purge)
        if isinstance(data, PipelineError):
            problems.append(Problem(key, _why(data)))
            continue
        yield parse_quarantine(by_key[key], data, problems)


def select_entries(
    storage: Storage, selection: Selection, problems: list[Problem]
) -> Iterator[tuple[QuarantineFile, Item]]:
    """Selected entries of current versions still in quarantine (replayed ones excluded)."""
    state = load_state(storage, problems)
    moved = state.replayed
    copies = Copies()
    refs = list_quarantine(storage, selection, problems, state)
    for qfile in read_quarantine(storage, refs, problems):
        for item in qfile.items:
            entry = item.entry
            if entry is None or entry["entry_id"] in moved or not selection.matches(entry):
                continue
            if copies.first(qfile, entry):
                yield qfile, item
    problems.extend(copies.problems())


class Copies:
    """Which file holds each entry id first; a copy in another file is counted once."""

    def __init__(self) -> None:
        self.owner: dict[str, str] = {}
        self.copies: Counter[tuple[str, str]] = Counter()

    def first(self, qfile: QuarantineFile, entry: dict[str, Any]) -> bool:
        owner = self.owner.setdefault(entry["entry_id"], qfile.key)
        if owner != qfile.key:
            self.copies[(qfile.key, owner)] += 1
        return owner == qfile.key

    def problems(self) -> list[Problem]:
        return [
            Problem(key, f"{n} entries are copies of entries in {owner}; counted once")
            for (key, owner), n in sorted(self.copies.items())
        ]


def record_text(entry: dict[str, Any], raw_line: bytes | None = None) -> bytes:
    """The record's original text: verbatim from the stored line when possible, else rebuilt
    (exact values, same key order); raw-text records give back their raw bytes."""
    if raw_line is not None and not entry.get("record_is_raw_text"):
        span = _record_span(raw_line, entry)
        if span is not None:
            return span
    return original_bytes(entry)


# --------------------------------------------------------------------------- rewriting


def _record_span(raw: bytes, entry: dict[str, Any]) -> bytes | None:
    """The verbatim text of `record` inside a stored line (entries start with entry_id)."""
    if entry.get("record_is_raw_text"):
        return None
    prefix = b'{"entry_id":' + orjson.dumps(entry["entry_id"]) + b',"record":'
    if not raw.startswith(prefix):
        return None
    try:
        text = raw.decode("utf-8")
        start = len(prefix.decode("utf-8"))
        _value, end = json.JSONDecoder().raw_decode(text, start)
    except ValueError:
        return None
    return text[start:end].encode("utf-8")


def dump_entry(item: Item) -> bytes:
    """A changed entry as one line; the record keeps its original text where known."""
    entry = item.entry
    assert entry is not None
    span = _record_span(item.raw, entry)
    out = jsonable(entry)
    if span is not None:
        out["record"] = orjson.Fragment(span)
    return orjson.dumps(out)
