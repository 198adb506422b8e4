"""Decode raw files of any supported shape into bounded chunks of typed rows."""

from __future__ import annotations

import codecs
import io
import json
import mmap
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from handlers.core import documents, screen
from handlers.core.payload import open_payload
from schemas import input_arrow_schema
from schemas.transaction import (
    CHECK_DECIMAL_PLACES,
    CHECK_DOCUMENT_TOO_LARGE,
    CHECK_DUPLICATE_KEY,
    CHECK_GZIP,
    CHECK_JSON_DEPTH,
    CHECK_JSON_OBJECT,
    CHECK_JSON_SYNTAX,
    CHECK_LINE_TOO_LARGE,
    CHECK_UTF8,
    MONEY_SCALE,
    json_type,
    type_check,
)

DEFAULT_CHUNK_BYTES = 32 * 1024 * 1024

_JSON_WS = b" \t\r\n"
_INT64 = (-(2**63), 2**63 - 1)
_READ_STEP = 1024 * 1024


@dataclass
class Rejected:
    """A line or element that never became a row: its text and why."""

    raw: bytes
    check: str
    line: int | None
    record_index: int
    detail: str = ""


@dataclass
class Chunk:
    """Typed rows from one bounded slice of a file, plus what could not be decoded."""

    index: int
    table: pa.Table
    lines: list[int | None]  # 1-based line of each row (None inside a JSON document)
    record_indexes: list[int]  # position of each row among the file's records
    raws: list[bytes] | None  # original text per row; None until needed (see raw())
    decode_errors: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    _data: bytes | memoryview | None = None  # the NDJSON slice, to recover raws lazily
    # Where each row's line starts and ends in `_data`; None: row i is non-blank line i.
    _spans: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def records(self) -> int:
        return self.table.num_rows + len(self.rejected)

    def release_source(self) -> None:
        """Let go of the raw slice (the largest part of a chunk): raw() is done with."""
        self.raws = self._data = self._spans = None

    def raw(self, row: int) -> bytes:
        if self.raws is None:
            assert self._data is not None
            if self._spans is not None:
                # Only rows that break the contract need their text: cut it out on demand.
                starts, ends = self._spans
                return bytes(self._data[starts[row] : ends[row]]).strip(_JSON_WS)
            self.raws = [ln.strip(_JSON_WS) for ln in bytes(self._data).split(b"\n")]
            self.raws = [r for r in self.raws if r]
        return self.raws[row]


def decode(stream: IO[bytes], chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[Chunk]:
    """Chunks of typed rows from a raw object: NDJSON, a JSON array or a JSON document."""
    payload, guard = open_payload(stream)
    first = _first_significant(payload)
    if (first == b"[" and not _array_is_first_of_many_lines(payload)) or (
        first == b"{" and not _first_line_parses(payload)
    ):
        chunks = _decode_document(payload, chunk_bytes)
    else:
        chunks = _decode_ndjson(_slices(payload, chunk_bytes))
    index = record_index = 0
    for chunk in chunks:
        index, record_index = chunk.index + 1, record_index + chunk.records
        yield chunk
    if guard is not None and guard.error is not None:
        # The compressed stream broke: what it held past this point is unreadable, so
        # it becomes one quarantine entry rather than vanishing.
        yield _rejected_chunk(index, Rejected(b"", CHECK_GZIP, None, record_index, guard.error))


def _first_significant(payload: IO[bytes]) -> bytes:
    peeked = payload.peek(64 * 1024)  # type: ignore[attr-defined]
    stripped = peeked.lstrip(_JSON_WS)
    return stripped[:1]


def _first_line_parses(payload: IO[bytes]) -> bool:
    """NDJSON unless none of the first few lines is a JSON value (a pretty-printed document)."""
    peeked = payload.peek(1024 * 1024)  # type: ignore[attr-defined]
    lines = [ln for ln in peeked.split(b"\n")[:-1] if ln.strip(_JSON_WS)][:3]
    if not lines:
        return True  # one long line (or nothing): stream it as NDJSON
    for line in lines:
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        return True
    return False


def _array_is_first_of_many_lines(payload: IO[bytes]) -> bool:
    """A one-line array followed by more lines is an NDJSON record, not the whole document."""
    peeked = payload.peek(1024 * 1024)  # type: ignore[attr-defined]
    first, newline, rest = peeked.lstrip(_JSON_WS).partition(b"\n")
    if not newline or not rest.strip(_JSON_WS):
        return False
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        return False
    return True


def _slices(payload: IO[bytes], chunk_bytes: int) -> Iterator[bytes | memoryview | _Oversized]:
    """Bounded slices that end on a line boundary (the last one may not).

    Each slice is read straight into its own anonymous memory map and handed out as a
    view of it: it costs the pages the read fills, once (nothing zero-filled first, no
    concatenated or cut copies), and a short last slice costs only its own length.
    """
    carry = b""
    at_end = False
    while True:
        # A carry left by the record cap is re-read first: the slice never grows past
        # chunk_bytes plus one read step, however short the lines.
        room = 0 if at_end else max(chunk_bytes - len(carry), min(chunk_bytes, _READ_STEP))
        if not carry and at_end:
            return
        buffer = mmap.mmap(-1, len(carry) + room or 1)
        buffer[: len(carry)] = carry
        got = _fill(payload, memoryview(buffer)[len(carry) :]) if room else 0
        at_end = at_end or got < room
        end = len(carry) + got
        if not end:
            return
        cut = _records_cut(buffer, end)
        if cut < 0:
            carry = buffer[:end]
            if len(carry) > screen.MAX_LINE_BYTES:
                # One absurd line: never held whole; skipped to its end, then reported.
                size, carry = _skip_line(payload, len(carry))
                yield _Oversized(bytes(buffer[: screen.ENTRY_RAW_CAP]), size)
            elif at_end:
                yield carry  # the last line, without its newline
                return
            continue
        carry = buffer[cut + 1 : end]
        piece = memoryview(buffer)[: cut + 1]
        del buffer  # the view keeps the map alive exactly as long as the chunk needs it
        yield piece
        del piece


@dataclass
class _Oversized:
    """A line over MAX_LINE_BYTES: its first bytes and its length, in place of its text."""

    head: bytes
    size: int


def _records_cut(buffer: mmap.mmap, end: int) -> int:
    """Where a slice ends: its last newline, or the one that keeps it to MAX_RECORDS_PER_CHUNK."""
    cut = buffer.rfind(b"\n", 0, end)
    if cut < 0 or end < screen.MAX_RECORDS_PER_CHUNK * 2:
        return cut  # too short to hold that many records
    view = np.frombuffer(buffer, np.uint8, count=end)
    seen = 0
    for start in range(0, end, _SCAN_STEP):
        newlines = np.flatnonzero(view[start : start + _SCAN_STEP] == 10)
        if seen + len(newlines) > screen.MAX_RECORDS_PER_CHUNK:
            return start + int(newlines[screen.MAX_RECORDS_PER_CHUNK - seen - 1])
        seen += len(newlines)
    return cut


def _skip_line(payload: IO[bytes], held: int) -> tuple[int, bytes]:
    """Read past the rest of an oversized line: its total size, and what follows it."""
    size = held
    while block := payload.read(_READ_STEP):
        newline = block.find(b"\n")
        if newline >= 0:
            return size + newline, block[newline + 1 :]
        size += len(block)
    return size, b""


def _fill(payload: IO[bytes], view: memoryview) -> int:
    """Read until `view` is full or the stream ends; bytes read."""
    total = 0
    while total < len(view):
        n = payload.readinto(view[total:])  # type: ignore[attr-defined]
        if not n:
            break
        total += n
    return total


def _decode_ndjson(slices: Iterator[bytes | memoryview | _Oversized]) -> Iterator[Chunk]:
    record_index = 0
    first_line = 1
    for index, data in enumerate(slices):
        if isinstance(data, _Oversized):
            detail = f"line of {data.size} bytes is over the {screen.MAX_LINE_BYTES}-byte limit"
            rejected = Rejected(data.head, CHECK_LINE_TOO_LARGE, first_line, record_index, detail)
            yield _rejected_chunk(index, rejected)
            first_line += 1
            record_index += 1
            continue
        offsets = _line_offsets(data)
        chunk = _ndjson_chunk(index, data, offsets, first_line, record_index)
        first_line += len(offsets) - 1 - (0 if data[-1:] == b"\n" else 1)  # newlines
        del data, offsets  # the chunk keeps what it needs; let go before the next read
        record_index += chunk.records
        yield chunk
        del chunk


# pyarrow 26's JSON reader crashes the process (SIGSEGV) when a top-level value is
# `null` (found by fuzzing). Arrow only sees data that is one object per line and whose
# every `null` is an object member's value; anything else takes the per-line path.
_NULL_NOT_A_MEMBER_VALUE = re.compile(rb"(?<!:)(?<!: )null")


def _safe_for_arrow(data: bytes) -> bool:
    body = data.strip(_JSON_WS)
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


def _read_arrow(data: bytes) -> pa.Table:
    if not _safe_for_arrow(data):
        raise pa.ArrowInvalid("not one JSON object per line")
    options = pa_json.ParseOptions(
        explicit_schema=input_arrow_schema(), unexpected_field_behavior="ignore"
    )
    return pa_json.read_json(io.BytesIO(data), parse_options=options)


# The NDJSON fast path. Most lines of most files are plain records; one RE2 pass (Arrow,
# in C++) finds the lines Arrow decodes exactly as the exact path would: keys spelled
# plainly, strings of valid UTF-8 without surrogate escapes, integers within int64, money
# with at most the column's decimals (and few enough digits that a float shows them all),
# `null` only as a member's value. Those are decoded by Arrow in bulk, straight from the
# slice; only the other lines are looked at in Python. The pattern runs on bytes (RE2's
# Latin-1 mode), so UTF-8 validity is spelled out byte by byte.
_WS = r"[ \t\r]*"
_UTF8_CHAR = (
    r"[\x20\x21\x23-\x5b\x5d-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]"
    r"|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    r"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)
_ESCAPE = r'\\(?:["\\/bfnrt]|u(?:[0-9a-cA-CefEF][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2}))'
_STRING = rf'"(?:{_UTF8_CHAR}|{_ESCAPE})*"'
_INTEGER = r"-?(?:0|[1-9][0-9]{0,17})"  # at most 18 digits: always within int64
_ANY_NUMBER = r"-?(?:0|[1-9][0-9]{0,17})(?:\.[0-9]{1,17})?"
_KEY_BYTE = r"[\x20\x21\x23-\x5b\x5d-\x7e]"  # printable ASCII but quote and backslash
_FLOAT_DIGITS = 15  # a float shows up to 15 significant digits exactly
_SCAN_STEP = 4 * 1024 * 1024
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)
# 4 MB blocks: a 32 MB slice still parses on every core, and its columns come out in 8
# pieces instead of 32, which makes every later step (checks, Parquet pages) cheaper.
_READ_OPTIONS = pa_json.ReadOptions(block_size=4 * 1024 * 1024)
_CANONICAL: str | None = None


def canonical_line_pattern() -> str:
    """RE2 pattern (on bytes) of an NDJSON line that Arrow may decode in bulk."""
    return rf"^{_canonical_record()}\n?$"


def _canonical_slice_pattern() -> str:
    """RE2 pattern of a whole slice of canonical lines: one pass, no per-line overhead."""
    record = _canonical_record()
    return rf"^(?:{record}\n)*(?:{record})?$"


def _canonical_record() -> str:
    global _CANONICAL
    if _CANONICAL is None:
        _CANONICAL = _build_canonical_record(input_arrow_schema())
    return _CANONICAL


def _build_canonical_record(schema: pa.Schema) -> str:
    members = []
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
    other = f'"{_other_key([f.name for f in schema])}"'
    members.append(f"{other}{_WS}:{_WS}(?:{_STRING}|{_ANY_NUMBER}|true|false|null)")
    member = "(?:" + "|".join(members) + ")"
    return rf"{_WS}\{{{_WS}(?:{member}{_WS}(?:,{_WS}{member}{_WS})*)?\}}{_WS}"


def _key_literal(name: str) -> str:
    return '"' + "".join(f"\\x{b:02x}" for b in name.encode()) + '"'


def _other_key(names: list[str]) -> str:
    """Any plain key but `names` (RE2 has no lookahead, so spelled out as a trie)."""
    children: dict[str, list[str]] = {}
    for name in names:
        if name:
            children.setdefault(name[0], []).append(name[1:])
    alternatives = [] if "" in names else [""]
    excluded = "".join(f"\\x{ord(c):02x}" for c in sorted(children))
    alternatives.append(rf'[^"\\\x00-\x1f\x7f-\xff{excluded}]{_KEY_BYTE}*')
    for char, tails in sorted(children.items()):
        alternatives.append(f"\\x{ord(char):02x}{_other_key(tails)}")
    return "(?:" + "|".join(alternatives) + ")"


def _line_offsets(data: bytes | memoryview) -> np.ndarray:
    """Where each line starts, then the end: line i is data[o[i]:o[i + 1]], newline kept."""
    view = np.frombuffer(data, np.uint8)
    parts = [np.zeros(1, np.int64)]
    for start in range(0, len(view), _SCAN_STEP):  # bounded temporaries
        parts.append(np.flatnonzero(view[start : start + _SCAN_STEP] == 10) + (start + 1))
    offsets = np.concatenate(parts)
    if offsets[-1] != len(view):
        offsets = np.append(offsets, len(view))
    return offsets


def _arrow_rows(buffer: pa.Buffer, rows: int) -> pa.Table | None:
    """Arrow's bulk decode of canonical lines; None when it disagrees (e.g. a repeated key)."""
    options = pa_json.ParseOptions(
        explicit_schema=input_arrow_schema(), unexpected_field_behavior="ignore"
    )
    try:
        table = pa_json.read_json(
            pa.BufferReader(buffer), read_options=_READ_OPTIONS, parse_options=options
        )
    except _ARROW_ERRORS:
        return None
    return table if table.num_rows == rows else None


def _joined(lines: pa.BinaryArray) -> pa.Buffer:
    """The bytes of `lines` back to back, each with its newline."""
    offsets = np.frombuffer(lines.buffers()[1], np.int32)
    first, last = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return lines.buffers()[2].slice(first, last - first)


def _canonical_rows(
    data: bytes | memoryview, lines: pa.BinaryArray, canonical: np.ndarray, rows: int
) -> pa.Table | None:
    """Arrow's bulk decode of a slice's canonical lines, without copying them out.

    The other lines are blanked in the slice's own buffer (Arrow skips blank lines) and
    put back right after the read; Arrow copies what it keeps, so the slice ends up as
    it was. A read-only slice (a short one) takes a copy of the canonical lines instead.
    """
    if not isinstance(data, memoryview) or data.readonly:
        return _arrow_rows(_joined(lines.filter(pa.array(canonical))), rows)
    offsets = np.frombuffer(lines.buffers()[1], np.int32)
    saved = []
    for at in np.flatnonzero(~canonical).tolist():
        start, end = int(offsets[at]), int(offsets[at + 1])
        if data[end - 1 : end] == b"\n":
            end -= 1
        saved.append((start, end, bytes(data[start:end])))
        data[start:end] = b" " * (end - start)
    try:
        return _arrow_rows(pa.py_buffer(data), rows)
    finally:
        for start, end, original in saved:
            data[start:end] = original


def _ndjson_chunk(
    index: int, data: bytes | memoryview, offsets: np.ndarray, first_line: int, record_index: int
) -> Chunk:
    """One NDJSON slice: canonical lines through Arrow in bulk, the others line by line."""
    count = len(offsets) - 1
    buffer = pa.py_buffer(data)
    whole = pa.Array.from_buffers(
        pa.binary(), 1, [None, pa.py_buffer(np.array([0, len(buffer)], np.int32)), buffer]
    )
    spans = (offsets[:-1], offsets[1:])
    if count and pc.match_substring_regex(whole, _canonical_slice_pattern())[0].as_py():
        # Every line is a plain record (so none is blank): Arrow reads the slice in place.
        table = _arrow_rows(buffer, count)
        if table is None:
            return _screened_chunk(index, bytes(data), first_line, record_index)
        return Chunk(
            index=index,
            table=table,
            lines=list(range(first_line, first_line + count)),
            record_indexes=list(range(record_index, record_index + count)),
            raws=None,
            _data=data,
            _spans=spans,
        )
    lines = pa.Array.from_buffers(
        pa.binary(), count, [None, pa.py_buffer(offsets.astype(np.int32)), buffer]
    )
    canonical = pc.match_substring_regex(lines, canonical_line_pattern())
    return _mixed_chunk(
        index, data, first_line, record_index, lines, canonical.to_numpy(zero_copy_only=False)
    )


def _mixed_chunk(
    index: int,
    data: bytes | memoryview,
    first_line: int,
    record_index: int,
    lines: pa.BinaryArray,
    canonical: np.ndarray,
) -> Chunk:
    offsets = np.frombuffer(lines.buffers()[1], np.int32).astype(np.int64)
    starts, ends = offsets[:-1], offsets[1:]
    nonblank = np.ones(len(canonical), dtype=bool)
    clean: list[bytes] = []
    clean_at: list[int] = []
    suspects: list[tuple[int, bytes]] = []
    for at in np.flatnonzero(~canonical).tolist():
        text = bytes(data[starts[at] : ends[at]]).strip(_JSON_WS)
        if not text:
            nonblank[at] = False
        elif _looks_clean(text):
            clean.append(text)
            clean_at.append(at)
        else:
            suspects.append((at, text))
    position = np.cumsum(nonblank) - 1  # a line's place among the slice's records
    parts: list[tuple[pa.Table, np.ndarray]] = []
    bulk = np.flatnonzero(canonical)
    if len(bulk):
        table = _canonical_rows(data, lines, canonical, len(bulk))
        if table is None:
            return _screened_chunk(index, bytes(data), first_line, record_index)
        parts.append((table, bulk))
    if clean:
        try:
            table = _read_arrow(b"\n".join(clean))
        except _ARROW_ERRORS:
            table = None
        if table is not None and table.num_rows == len(clean):
            parts.append((table, np.array(clean_at, dtype=np.int64)))
        else:
            suspects = sorted(suspects + list(zip(clean_at, clean, strict=True)))
    rows, row_at, _texts, exact_errors, rejected = _decode_exactly(
        (at, text, first_line + at, record_index + int(position[at])) for at, text in suspects
    )
    base = sum(len(at) for _, at in parts)
    if rows:
        parts.append(
            (pa.Table.from_pylist(rows, schema=input_arrow_schema()), np.array(row_at, np.int64))
        )
    errors = {base + k: v for k, v in exact_errors.items()}
    if parts:
        table = pa.concat_tables([t for t, _ in parts])
        at = np.concatenate([a for _, a in parts])
    else:
        table = input_arrow_schema().empty_table()
        at = np.zeros(0, dtype=np.int64)
    # Restore file order, so "first occurrence" means first in the file.
    order = np.argsort(at, kind="stable")
    if (order != np.arange(len(order))).any():
        table = table.take(pa.array(order))
        at = at[order]
        new_row = np.empty(len(order), dtype=np.int64)
        new_row[order] = np.arange(len(order))
        errors = {int(new_row[k]): v for k, v in errors.items()}
    rejected.sort(key=lambda r: r.record_index)
    return Chunk(
        index=index,
        table=table,
        lines=(at + first_line).tolist(),
        record_indexes=(position[at] + record_index).tolist(),
        raws=None,
        decode_errors=errors,
        rejected=rejected,
        _data=data,
        _spans=(starts[at], ends[at]),
    )


def _screened_chunk(index: int, data: bytes, first_line: int, record_index: int) -> Chunk:
    """Screen each line cheaply; clean lines still go through Arrow in bulk."""
    pairs = [
        (text, n)
        for n, line in enumerate(data.split(b"\n"), first_line)
        if (text := line.strip(_JSON_WS))
    ]
    return next(_line_chunks(pairs, index, record_index, single=True))


_SCHEMA_TYPES: dict[str, str] | None = None


def _json_types() -> dict[str, str]:
    global _SCHEMA_TYPES
    if _SCHEMA_TYPES is None:
        _SCHEMA_TYPES = {f.name: json_type(f.type) for f in input_arrow_schema()}
    return _SCHEMA_TYPES


def _looks_clean(text: bytes) -> bool:
    """True when Arrow will decode the line exactly as the exact path would."""
    if screen.has_risky_number(text):
        return False  # exponents and huge numbers: only the exact path may see them
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(obj, dict):
        return False
    for name, kind in _json_types().items():
        value = obj.get(name)
        if value is None:
            continue  # null/missing: Arrow gives null, pandera reports it
        if kind == "string":
            if not isinstance(value, str):
                return False
        elif kind == "integer":
            if type(value) is not int or not _INT64[0] <= value <= _INT64[1]:
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


def _assemble(
    index: int,
    clean: list[bytes],
    clean_at: list[int],
    suspects: list[tuple[int, bytes, int]],
    line_of: list[int],
    record_index: int,
) -> Chunk:
    tables: list[pa.Table] = []
    positions: list[int] = []
    raws: list[bytes] = []
    if clean:
        try:
            tables.append(_read_arrow(b"\n".join(clean)))
            positions.extend(clean_at)
            raws.extend(clean)
        except _ARROW_ERRORS:
            suspects = sorted(
                suspects + [(p, t, line_of[p]) for p, t in zip(clean_at, clean, strict=True)]
            )
    rows, row_at, texts, exact_errors, rejected = _decode_exactly(
        (p, text, line, record_index + p) for p, text, line in suspects
    )
    errors = {len(positions) + k: v for k, v in exact_errors.items()}
    positions.extend(row_at)
    raws.extend(texts)
    if rows:
        tables.append(pa.Table.from_pylist(rows, schema=input_arrow_schema()))
    table = pa.concat_tables(tables) if tables else input_arrow_schema().empty_table()
    # Restore file order, so "first occurrence" means first in the file.
    order = sorted(range(len(positions)), key=positions.__getitem__)
    if order != list(range(len(order))):
        table = table.take(pa.array(order, pa.int64()))
        raws = [raws[i] for i in order]
        remap = {old: new for new, old in enumerate(order)}
        errors = {remap[k]: v for k, v in errors.items()}
        positions = [positions[i] for i in order]
    rejected.sort(key=lambda r: r.record_index)
    return Chunk(
        index=index,
        table=table,
        lines=[line_of[p] for p in positions],
        record_indexes=[record_index + p for p in positions],
        raws=raws,
        decode_errors=errors,
        rejected=rejected,
    )


def _decode_exactly(
    suspects: Iterable[tuple[int, bytes, int | None, int]],
) -> tuple[
    list[dict[str, Any]], list[int], list[bytes], dict[int, list[tuple[str, str]]], list[Rejected]
]:
    """The exact path over (position, text, line, record index) suspects.

    Returns the typed rows with their positions and texts, each row's decode errors
    (keyed by its index in `rows`), and the lines that never became rows.
    """
    rows: list[dict[str, Any]] = []
    at: list[int] = []
    texts: list[bytes] = []
    errors: dict[int, list[tuple[str, str]]] = {}
    rejected: list[Rejected] = []
    for position, text, line, index in suspects:
        result = decode_record(text)
        if isinstance(result, Rejected):
            result.line = line
            result.record_index = index
            rejected.append(result)
            continue
        row, row_errors = result
        if row_errors:
            errors[len(rows)] = row_errors
        rows.append(row)
        at.append(position)
        texts.append(text)
    return rows, at, texts, errors, rejected


class _NotFinite(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NotFinite(f"{name} is not a JSON number")


_EXACT = json.JSONDecoder(
    parse_float=Decimal, parse_constant=_reject_constant, object_pairs_hook=screen.unique_pairs
)


def decode_record(text: bytes) -> Rejected | tuple[dict[str, Any], list[tuple[str, str]]]:
    """The exact path: one line to a typed row and its decode errors, or a rejection."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as e:
        return Rejected(text, CHECK_UTF8, None, 0, str(e))
    if screen.too_deep(text):
        return Rejected(text, CHECK_JSON_DEPTH, None, 0, f"nested deeper than {screen.MAX_DEPTH}")
    try:
        obj = _EXACT.decode(decoded)
    except screen.DuplicateKey as e:
        return Rejected(text, CHECK_DUPLICATE_KEY, None, 0, str(e)[:200])
    except (ValueError, RecursionError) as e:
        return Rejected(text, CHECK_JSON_SYNTAX, None, 0, str(e)[:200])
    if not isinstance(obj, dict):
        return Rejected(text, CHECK_JSON_OBJECT, None, 0, f"JSON {type(obj).__name__}")
    return typed_row(obj)


def typed_row(obj: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Coerce a decoded object to the contract's Arrow types, noting each type error."""
    row: dict[str, Any] = {}
    errors: list[tuple[str, str]] = []
    for spec in _field_specs():
        value = obj.get(spec.name)
        if value is None:
            row[spec.name] = None
            continue
        typed, check = _typed(value, spec)
        row[spec.name] = typed
        if check:
            errors.append((spec.name, check))
    return row, errors


@dataclass(frozen=True)
class _FieldSpec:
    """What `_typed` needs to know about a field, worked out once from the schema."""

    name: str
    kind: str  # JSON type: string, integer or number
    type_error: str
    scale: int = 0
    limit: Decimal | None = None  # largest magnitude the decimal column holds
    quantum: Decimal | None = None  # one unit of its last place


_SPECS: tuple[_FieldSpec, ...] | None = None


def _field_specs() -> tuple[_FieldSpec, ...]:
    global _SPECS
    if _SPECS is None:
        specs = []
        for f in input_arrow_schema():
            spec = _FieldSpec(f.name, json_type(f.type), type_check(f.type))
            if spec.kind == "number":
                scale = f.type.scale
                spec = _FieldSpec(
                    f.name,
                    spec.kind,
                    spec.type_error,
                    scale,
                    Decimal(10) ** (f.type.precision - scale) - Decimal(1).scaleb(-scale),
                    Decimal(1).scaleb(-scale),
                )
            specs.append(spec)
        _SPECS = tuple(specs)
    return _SPECS


def _typed(value: Any, spec: _FieldSpec) -> tuple[Any, str | None]:
    if spec.kind == "string":
        if not isinstance(value, str):
            return None, spec.type_error
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate escape such as "\ud800"
            return None, CHECK_UTF8
        return value, None
    if spec.kind == "integer":
        if type(value) is not int:
            return None, spec.type_error
        # Out-of-range integers are clamped so the range check reports them.
        return min(max(value, _INT64[0]), _INT64[1]), None
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None, spec.type_error
    number = Decimal(value)
    if _decimal_places(number) > spec.scale:
        return None, CHECK_DECIMAL_PLACES
    assert spec.limit is not None and spec.quantum is not None
    # Clamped into the column's range; the range checks then report the original value.
    return max(min(number, spec.limit), -spec.limit).quantize(spec.quantum), None


def _decimal_places(number: Decimal) -> int:
    _sign, digits, exponent = number.as_tuple()
    if not isinstance(exponent, int):
        return 99  # NaN/Infinity never come from JSON, but never pass either
    trailing = len(digits) - len(bytes(digits).rstrip(b"\x00"))
    exponent += min(trailing, max(-exponent, 0))
    return max(-exponent, 0)


def _decode_document(payload: IO[bytes], chunk_bytes: int) -> Iterator[Chunk]:
    """A JSON array of records, or one or more (pretty-printed) JSON objects, streamed."""
    batch: list[tuple[bytes, int]] = []
    size = index = record_index = 0
    for item in documents.elements(payload):
        if isinstance(item, documents.Element):
            batch.append((item.text, item.line))
            size += len(item.text)
            if size >= chunk_bytes or len(batch) >= screen.MAX_RECORDS_PER_CHUNK:
                chunk = _document_chunk(index, batch, record_index)
                index, record_index = index + 1, record_index + chunk.records
                batch, size = [], 0
                yield chunk
            continue
        if batch:
            chunk = _document_chunk(index, batch, record_index)
            index, record_index = index + 1, record_index + chunk.records
            batch, size = [], 0
            yield chunk
        if isinstance(item, documents.TooLarge):
            detail = (
                f"an element over {screen.MAX_LINE_BYTES} bytes; it and the rest of the "
                f"document ({item.skipped} characters) were not read"
            )
            rejected = Rejected(
                item.head, CHECK_DOCUMENT_TOO_LARGE, item.line, record_index, detail
            )
            yield _rejected_chunk(index, rejected)
        else:
            yield from _salvage(item, chunk_bytes, index, record_index)
    if batch:
        yield _document_chunk(index, batch, record_index)


def _salvage(
    broken: documents.Broken, chunk_bytes: int, index: int, record_index: int
) -> Iterator[Chunk]:
    """What follows a broken spot, line by line, so the good records after it survive."""
    line = broken.line
    for data in _slices(broken.rest, chunk_bytes):
        if isinstance(data, _Oversized):
            detail = f"line of {data.size} bytes is over the {screen.MAX_LINE_BYTES}-byte limit"
            rejected = Rejected(data.head, CHECK_LINE_TOO_LARGE, line, record_index, detail)
            yield _rejected_chunk(index, rejected)
            index, record_index, line = index + 1, record_index + 1, line + 1
            continue
        lines = []
        for n, text in enumerate(bytes(data).split(b"\n"), line):
            stripped = text.strip(_JSON_WS).rstrip(b",").strip(_JSON_WS)
            if stripped and stripped not in (b"]", b"["):
                lines.append((stripped, n))
        line += bytes(data).count(b"\n")
        del data
        for chunk in _line_chunks(lines, index, record_index):
            index, record_index = index + 1, record_index + chunk.records
            yield chunk


def _rejected_chunk(index: int, rejected: Rejected) -> Chunk:
    """A chunk holding only one thing that never became a row."""
    return Chunk(
        index=index,
        table=input_arrow_schema().empty_table(),
        lines=[],
        record_indexes=[],
        raws=[],
        rejected=[rejected],
    )


def _document_chunk(index: int, batch: list[tuple[bytes, int]], record_index: int) -> Chunk:
    return next(_line_chunks(batch, index, record_index, single=True))


def _line_chunks(
    lines: list[tuple[bytes, int]], index: int, record_index: int, single: bool = False
) -> Iterator[Chunk]:
    """Chunks from already-split (text, line) pairs, through the screen + exact paths."""
    step = len(lines) if single else 50_000
    for start in range(0, max(len(lines), 1), max(step, 1)):
        part = lines[start : start + step]
        if not part and not single:
            return
        clean, clean_at, suspects = [], [], []
        for position, (text, line) in enumerate(part):
            if _looks_clean(text):
                clean.append(text)
                clean_at.append(position)
            else:
                suspects.append((position, text, line))
        line_of = [line for _, line in part]
        chunk = _assemble(index, clean, clean_at, suspects, line_of, record_index)
        record_index += chunk.records
        index += 1
        yield chunk
