"""Hostile-input screens and limits: what no record may do before it reaches Arrow or json."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

# Every limit below bounds memory or stack whatever the input (see README, Guarantees).
MAX_DEPTH = 64  # nesting of arrays/objects in one record (a record is flat: depth 1)
MAX_LINE_BYTES = 32 * 1024 * 1024  # one NDJSON line or document element; never held whole
# Records in one chunk: canonical lines, which Arrow reads in place, cost little each
# whatever they break; lines that leave the fast path cost a decoded record each.
MAX_RECORDS_PER_CHUNK = 131_072
MAX_EXACT_RECORDS_PER_CHUNK = 32_768
MAX_ENTRIES_PER_FILE = 32_768  # quarantine entries one file holds (one chunk may need more)
MAX_INFLATED_BYTES = 8 * 1024 * 1024 * 1024  # what one gzip object may expand to
# Real NDJSON compresses 4-10 times; a bomb over 1000 (2 MB -> 2 GiB).
MAX_GZIP_RATIO = 100  # inflated / compressed, checked once past RATIO_GRACE_BYTES
RATIO_GRACE_BYTES = 1024 * 1024
ENTRY_RAW_CAP = 64 * 1024  # raw text one quarantine entry keeps of a rejected record
MAX_NUMBER_CHARS = 64  # a JSON number longer than this is never a contract value

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
# Exponents or very long digit runs outside strings: Arrow's decimal reader crashes on
# `1e-99999999` (pyarrow 26), and formatting `1e999999999` exhausts memory.
_RISKY_NUMBER = re.compile(rb"[0-9.][eE]|[0-9]{%d}" % MAX_NUMBER_CHARS)
_STEP = 4 * 1024 * 1024


class DuplicateKey(ValueError):
    """An object names the same key twice: which value is meant is ambiguous."""


def unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """object_pairs_hook for json: a dict, or DuplicateKey (escaped spellings included)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(f"key {key!r} appears more than once")
            seen.add(key)
    return obj


def outside_strings(text: bytes | memoryview) -> bytes:
    """`text` with every string literal emptied, so only structure and numbers remain."""
    return _STRING.sub(b'""', bytes(text))


def has_risky_number(text: bytes) -> bool:
    """A number Arrow must not see (exponent form or absurdly long), outside strings."""
    if not _RISKY_NUMBER.search(text):
        return False
    return _RISKY_NUMBER.search(outside_strings(text)) is not None


def depth(text: bytes | memoryview) -> int:
    """Deepest nesting of arrays/objects in `text` (strings ignored), in bounded steps."""
    raw = bytes(text)
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return min(raw.count(b"[") + raw.count(b"{"), MAX_DEPTH)
    body = np.frombuffer(outside_strings(raw), np.uint8)
    level = deepest = 0
    for start in range(0, len(body), _STEP):
        part = body[start : start + _STEP]
        step = ((part == 0x5B) | (part == 0x7B)).astype(np.int32)
        step -= ((part == 0x5D) | (part == 0x7D)).astype(np.int32)
        levels = np.cumsum(step, dtype=np.int64) + level
        if len(levels):
            deepest = max(deepest, int(levels.max()))
            level = int(levels[-1])
    return deepest


def too_deep(text: bytes | memoryview) -> bool:
    return depth(text) > MAX_DEPTH


def capped(raw: bytes) -> bytes:
    """At most ENTRY_RAW_CAP bytes of a rejected record's text."""
    return raw if len(raw) <= ENTRY_RAW_CAP else raw[:ENTRY_RAW_CAP]


_BRACKET = re.compile(r"[\[\]{}]")
_TEXT_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def element_end(doc: str, pos: int) -> int:
    """Where the array/object starting at doc[pos] closes (or the end of doc), strings skipped."""
    level = 0
    at = pos
    quote = doc.find('"', at)
    while at < len(doc):
        if 0 <= quote < at:
            quote = doc.find('"', at)  # found once per string, not once per bracket
        bracket = _BRACKET.search(doc, at)
        if bracket is None:
            return len(doc)
        if 0 <= quote < bracket.start():
            string = _TEXT_STRING.match(doc, quote)
            at = string.end() if string else len(doc)
            continue
        level += 1 if bracket.group() in "[{" else -1
        at = bracket.end()
        if level <= 0:
            return at
    return len(doc)
