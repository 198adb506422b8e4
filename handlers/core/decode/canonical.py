"""The fast path's proof: which lines Arrow's JSON reader decodes exactly as the exact path."""

from __future__ import annotations

import codecs
import functools
import io
import re

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.json as pa_json

from handlers.core import screen
from handlers.core.decode.chunk import JSON_WS
from schemas import input_arrow_schema
from schemas.transaction import MONEY_SCALE, json_type

INT64 = (-(2**63), 2**63 - 1)
ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)

# Most lines of most files are plain records; one RE2 pass (Arrow, in C++) finds the
# lines Arrow decodes exactly as the exact path would: keys spelled plainly, strings of
# valid UTF-8 without surrogate escapes, integers within int64, money with at most the
# column's decimals (and few enough digits that a float shows them all), `null` only as
# a member's value. Those are decoded by Arrow in bulk, straight from the slice; only
# the other lines are looked at in Python. The pattern runs on bytes (RE2's Latin-1
# mode), so UTF-8 validity is spelled out byte by byte.
_WS = r"[ \t\r]*"
_UTF8_CHAR = (
    r"[\x20\x21\x23-\x5b\x5d-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]"
    r"|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    r"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)
_ESCAPE = r'\\(?:["\\/bfnrt]|u(?:[0-9a-cA-CefEF][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2}))'
_STRING = rf'"(?:{_UTF8_CHAR}|{_ESCAPE})*"'
_INTEGER = r"-?(?:0|[1-9][0-9]{0,17})"  # at most 18 digits: always within int64
_FLOAT_DIGITS = 15  # a float shows up to 15 significant digits exactly
# 4 MB blocks: a 32 MB slice still parses on every core, and its columns come out in 8
# pieces instead of 32, which makes every later step (checks, Parquet pages) cheaper.
_READ_OPTIONS = pa_json.ReadOptions(block_size=4 * 1024 * 1024)


def canonical_line_pattern() -> str:
    """RE2 pattern (on bytes) of an NDJSON line that Arrow may decode in bulk."""
    return rf"^{canonical_record()}\n?$"


def canonical_slice_pattern() -> str:
    """RE2 pattern of a whole slice of canonical lines: one pass, no per-line overhead."""
    record = canonical_record()
    return rf"^(?:{record}\n)*(?:{record})?$"


@functools.cache
def canonical_record() -> str:
    """RE2 pattern of one canonical record (no newline), built from the contract's types."""
    members = []
    schema = input_arrow_schema()
    for f in schema:
        if json_type(f.type) == "string":
            value = f"{_STRING}|"
        elif pa.types.is_integer(f.type):
            value = f"{_INTEGER}|"
        elif pa.types.is_decimal(f.type):
            digits = min(f.type.precision, _FLOAT_DIGITS) - f.type.scale
            fraction = rf"(?:\.[0-9]{{1,{f.type.scale}}})?" if f.type.scale else ""
            value = f"-?(?:0|[1-9][0-9]{{0,{digits - 1}}}){fraction}|" if digits > 0 else ""
        else:
            value = ""  # any other type: only null is plain enough
        members.append(f"{_key_literal(f.name)}{_WS}:{_WS}(?:{value}null)")
    # No other keys: Arrow ignores fields the contract does not name, and so would not
    # notice one named twice, which the exact path rejects as `duplicate_key`.
    member = "(?:" + "|".join(members) + ")"
    return rf"{_WS}\{{{_WS}(?:{member}{_WS}(?:,{_WS}{member}{_WS})*)?\}}{_WS}"


def _key_literal(name: str) -> str:
    return '"' + "".join(f"\\x{b:02x}" for b in name.encode()) + '"'


def _parse_options() -> pa_json.ParseOptions:
    return pa_json.ParseOptions(
        explicit_schema=input_arrow_schema(), unexpected_field_behavior="ignore"
    )


def arrow_rows(buffer: pa.Buffer, rows: int) -> pa.Table | None:
    """Arrow's bulk decode of canonical lines; None when it disagrees (e.g. a repeated key)."""
    try:
        table = pa_json.read_json(
            pa.BufferReader(buffer), read_options=_READ_OPTIONS, parse_options=_parse_options()
        )
    except ARROW_ERRORS:
        return None
    return table if table.num_rows == rows else None


def _joined(lines: pa.BinaryArray) -> pa.Buffer:
    """The bytes of `lines` back to back, each with its newline."""
    offsets = np.frombuffer(lines.buffers()[1], np.int32)
    first, last = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return lines.buffers()[2].slice(first, last - first)


def canonical_rows(
    data: bytes | memoryview, lines: pa.BinaryArray, canonical: np.ndarray, rows: int
) -> pa.Table | None:
    """Arrow's bulk decode of a slice's canonical lines, without copying them out.

    The other lines are blanked in the slice's own buffer (Arrow skips blank lines) and
    put back right after the read; Arrow copies what it keeps, so the slice ends up as
    it was. A read-only slice (a short one) takes a copy of the canonical lines instead.
    """
    if not isinstance(data, memoryview) or data.readonly:
        return arrow_rows(_joined(lines.filter(pa.array(canonical))), rows)
    offsets = np.frombuffer(lines.buffers()[1], np.int32)
    saved = []
    for at in np.flatnonzero(~canonical).tolist():
        start, end = int(offsets[at]), int(offsets[at + 1])
        if data[end - 1 : end] == b"\n":
            end -= 1
        saved.append((start, end, bytes(data[start:end])))
        data[start:end] = b" " * (end - start)
    try:
        return arrow_rows(pa.py_buffer(data), rows)
    finally:
        for start, end, original in saved:
            data[start:end] = original


# pyarrow 26's JSON reader crashes the process (SIGSEGV) when a top-level value is
# `null` (found by fuzzing). Arrow only sees data that is one object per line and whose
# every `null` is an object member's value; anything else takes the per-line path.
_NULL_NOT_A_MEMBER_VALUE = re.compile(rb"(?<!:)(?<!: )null")


def _safe_for_arrow(data: bytes) -> bool:
    body = data.strip(JSON_WS)
    if not body.startswith(b"{") or not body.endswith(b"}"):
        return False
    lines = body.count(b"\n") + 1
    if body.count(b"\n{") + 1 != lines:
        return False
    if body.count(b"}\n") + body.count(b"}\r\n") + 1 != lines:
        return False
    if b"null" in body and _NULL_NOT_A_MEMBER_VALUE.search(body):
        return False
    # Arrow copies invalid UTF-8 into string columns unchecked; the contract quarantines it.
    return body.isascii() or _is_utf8(body)


def _is_utf8(data: bytes, step: int = 1 << 20) -> bool:
    """UTF-8 validity in bounded slices, so no full-size str is ever built."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for start in range(0, len(data), step):
            decoder.decode(data[start : start + step])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def read_screened(lines: list[bytes]) -> pa.Table | None:
    """Arrow's decode of lines `looks_clean` passed; None unless one row per line came out."""
    data = b"\n".join(lines)
    if not _safe_for_arrow(data):
        return None
    try:
        table = pa_json.read_json(io.BytesIO(data), parse_options=_parse_options())
    except ARROW_ERRORS:
        return None
    return table if table.num_rows == len(lines) else None


@functools.cache
def _json_types() -> dict[str, str]:
    return {f.name: json_type(f.type) for f in input_arrow_schema()}


def looks_clean(text: bytes) -> bool:
    """True when Arrow will decode the line exactly as the exact path would."""
    if screen.has_risky_number(text):
        return False  # exponents and huge numbers: only the exact path may see them
    if screen.too_deep(text):
        # The depth limit holds for ignored fields too (found by the differential test:
        # an extra field nested 70 deep was a valid row here, `json_depth` exactly).
        return False
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(obj, dict):
        return False
    types = _json_types()
    if not types.keys() >= obj.keys():
        return False  # a field the contract ignores: Arrow would not see it repeated
    for name, kind in types.items():
        value = obj.get(name)
        if value is None:
            continue  # null/missing: Arrow gives null, pandera reports it
        if kind == "string":
            if not isinstance(value, str):
                return False
        elif kind == "integer":
            if type(value) is not int or not INT64[0] <= value <= INT64[1]:
                return False
        elif type(value) is float:
            digits = repr(value)
            if "e" in digits or "inf" in digits or "nan" in digits:
                return False
            if len(digits.partition(".")[2]) > MONEY_SCALE:
                return False
        elif type(value) is not int:
            return False
    # Arrow rejects duplicate keys that orjson silently collapses; it then fails the
    # bulk decode and the whole group falls back to the exact path, which is correct.
    return True
