"""NDJSON slices to chunks: canonical lines through Arrow in bulk, the others line by line."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from handlers.core import screen
from handlers.core.decode.canonical import (
    arrow_rows,
    canonical_line_pattern,
    canonical_rows,
    canonical_slice_pattern,
    looks_clean,
    read_screened,
)
from handlers.core.decode.chunk import JSON_WS, Chunk, rejected_chunk
from handlers.core.decode.exact import decode_exactly
from handlers.core.decode.records import in_file_order, line_chunks
from handlers.core.decode.slices import Oversized, Slice
from schemas import input_arrow_schema


def decode_ndjson(slices: Iterator[Slice | Oversized], fast: bool = True) -> Iterator[Chunk]:
    """Chunks of a slice's lines; `fast=False` sends every record down the exact path.

    A slice of canonical lines is one chunk, read by Arrow in place (up to
    MAX_RECORDS_PER_CHUNK rows, which cost little each however bad they are). Any other
    slice is cut into chunks of at most MAX_EXACT_RECORDS_PER_CHUNK lines, since the
    lines that leave the fast path cost a decoded record each.
    """
    record_index = 0
    first_line = 1
    index = 0
    for piece in slices:
        if isinstance(piece, Oversized):
            yield rejected_chunk(index, piece.rejected(first_line, record_index))
            index, first_line, record_index = index + 1, first_line + 1, record_index + 1
            continue
        for part in _parts(piece, fast):
            chunk = _ndjson_chunk(index, part, first_line, record_index, fast)
            first_line += len(part.offsets) - 1 - (0 if part.data[-1:] == b"\n" else 1)
            del part  # the chunk keeps what it needs; let go before the next read
            index, record_index = index + 1, record_index + chunk.records
            yield chunk
            del chunk
        del piece


@dataclass
class _Part:
    """Lines of a slice that become one chunk, and what is known of them already."""

    data: bytes | memoryview
    offsets: np.ndarray
    table: pa.Table | None = None  # Arrow's read of them all, when they are all canonical
    canonical: np.ndarray | None = None  # which lines are, when already matched


def _parts(piece: Slice, fast: bool) -> Iterator[_Part]:
    """The slice whole, unless more than MAX_EXACT_RECORDS_PER_CHUNK of its lines need
    the per-line path: then parts holding at most that many of them each."""
    data, offsets = piece.data, piece.offsets
    count = len(offsets) - 1
    step = screen.MAX_EXACT_RECORDS_PER_CHUNK
    if count <= step:
        yield _Part(data, offsets)
        return
    if fast and _all_canonical(data):
        table = arrow_rows(pa.py_buffer(data), count)
        if table is not None:
            yield _Part(data, offsets, table=table)
            return
        canonical = np.zeros(count, dtype=bool)  # Arrow disagreed: trust no line to it
    else:
        canonical = _canonical_lines(_lines(data, offsets), fast)
    per_line = np.cumsum(~canonical)
    if per_line[-1] <= step:
        yield _Part(data, offsets, canonical=canonical)
        return
    bounds = [0, *np.searchsorted(per_line, np.arange(step, per_line[-1], step), "right"), count]
    view = memoryview(data)
    for first, last in itertools.pairwise(int(b) for b in bounds):
        lines = offsets[first : last + 1]
        start, end = int(lines[0]), int(lines[-1])
        yield _Part(view[start:end], lines - start, canonical=canonical[first:last])


def _lines(data: bytes | memoryview, offsets: np.ndarray) -> pa.BinaryArray:
    """The slice's lines as an Arrow array over the slice itself (no copy)."""
    return pa.Array.from_buffers(
        pa.binary(),
        len(offsets) - 1,
        [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)],
    )


def _canonical_lines(lines: pa.BinaryArray, fast: bool) -> np.ndarray:
    if not fast:
        return np.zeros(len(lines), dtype=bool)
    matched = pc.match_substring_regex(lines, canonical_line_pattern())
    return matched.to_numpy(zero_copy_only=False)


def _all_canonical(data: bytes | memoryview) -> bool:
    """One regex pass over the whole slice: is every line a plain record?"""
    buffer = pa.py_buffer(data)
    whole = pa.Array.from_buffers(
        pa.binary(), 1, [None, pa.py_buffer(np.array([0, len(buffer)], np.int32)), buffer]
    )
    return bool(pc.match_substring_regex(whole, canonical_slice_pattern())[0].as_py())


def _ndjson_chunk(index: int, part: _Part, first_line: int, record_index: int, fast: bool) -> Chunk:
    data, offsets, table = part.data, part.offsets, part.table
    count = len(offsets) - 1
    if table is None and part.canonical is None and fast and count and _all_canonical(data):
        table = arrow_rows(pa.py_buffer(data), count)
        if table is None:
            return _screened_chunk(index, bytes(data), first_line, record_index)
    if table is not None:
        # Every line is a plain record (so none is blank): Arrow read the slice in place.
        return Chunk(
            index=index,
            table=table,
            # Ranges, not lists: 131,072 ints each would be ~5 MB per chunk in flight.
            lines=range(first_line, first_line + count),
            record_indexes=range(record_index, record_index + count),
            raws=None,
            source=data,
            spans=(offsets[:-1], offsets[1:]),
        )
    lines = _lines(data, offsets)
    canonical = part.canonical if part.canonical is not None else _canonical_lines(lines, fast)
    return _mixed_chunk(index, data, first_line, record_index, lines, canonical, fast)


@dataclass
class _Sorted:
    """A slice's non-canonical lines, sorted by which path decodes them."""

    nonblank: np.ndarray
    clean: list[bytes] = field(default_factory=list)  # Arrow may read them (looks_clean)
    clean_at: list[int] = field(default_factory=list)
    suspects: list[tuple[int, bytes]] = field(default_factory=list)  # the exact path's


def _sort_lines(
    data: bytes | memoryview,
    starts: np.ndarray,
    ends: np.ndarray,
    canonical: np.ndarray,
    fast: bool,
) -> _Sorted:
    out = _Sorted(np.ones(len(canonical), dtype=bool))
    for at in np.flatnonzero(~canonical).tolist():
        text = bytes(data[starts[at] : ends[at]]).strip(JSON_WS)
        if not text:
            out.nonblank[at] = False
        elif fast and looks_clean(text):
            out.clean.append(text)
            out.clean_at.append(at)
        else:
            out.suspects.append((at, text))
    return out


def _mixed_chunk(
    index: int,
    data: bytes | memoryview,
    first_line: int,
    record_index: int,
    lines: pa.BinaryArray,
    canonical: np.ndarray,
    fast: bool,
) -> Chunk:
    offsets = np.frombuffer(lines.buffers()[1], np.int32).astype(np.int64)
    starts, ends = offsets[:-1], offsets[1:]
    sorted_lines = _sort_lines(data, starts, ends, canonical, fast)
    position = np.cumsum(sorted_lines.nonblank) - 1  # a line's place among the records
    parts: list[tuple[pa.Table, np.ndarray]] = []
    bulk = np.flatnonzero(canonical)
    if len(bulk):
        table = canonical_rows(data, lines, canonical, len(bulk))
        if table is None:
            return _screened_chunk(index, bytes(data), first_line, record_index)
        parts.append((table, bulk))
    suspects = sorted_lines.suspects
    if sorted_lines.clean:
        table = read_screened(sorted_lines.clean)
        if table is not None:
            parts.append((table, np.array(sorted_lines.clean_at, dtype=np.int64)))
        else:
            clean = zip(sorted_lines.clean_at, sorted_lines.clean, strict=True)
            suspects = sorted(suspects + list(clean))
    exact = decode_exactly(
        (at, text, first_line + at, record_index + int(position[at])) for at, text in suspects
    )
    base = sum(len(at) for _, at in parts)
    if exact.rows:
        rows = pa.Table.from_pylist(exact.rows, schema=input_arrow_schema())
        parts.append((rows, np.array(exact.at, np.int64)))
    errors = {base + k: v for k, v in exact.errors.items()}
    table, at, errors = in_file_order(parts, errors)
    exact.rejected.sort(key=lambda r: r.record_index)
    return Chunk(
        index=index,
        table=table,
        lines=at + first_line,  # arrays: a list would hold a Python int per row
        record_indexes=position[at] + record_index,
        raws=None,
        decode_errors=errors,
        rejected=exact.rejected,
        source=data,
        spans=(starts[at], ends[at]),
    )


def _screened_chunk(index: int, data: bytes, first_line: int, record_index: int) -> Chunk:
    """Screen each line cheaply; clean lines still go through Arrow in bulk."""
    pairs = [
        (text, n)
        for n, line in enumerate(data.split(b"\n"), first_line)
        if (text := line.strip(JSON_WS))
    ]
    return next(line_chunks(pairs, index, record_index, fast=True, single=True))
