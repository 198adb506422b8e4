"""JSON documents (an array of records, or pretty-printed objects), streamed in chunks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

import orjson

from handlers.core import documents, screen
from handlers.core.decode.chunk import JSON_WS, Chunk, Rejected, rejected_chunk
from handlers.core.decode.records import line_chunks
from handlers.core.decode.slices import Oversized, slices
from schemas.transaction import CHECK_DOCUMENT_TOO_LARGE


def is_document(payload: IO[bytes]) -> bool:
    """Whether the payload is one JSON document rather than NDJSON (peeks, reads nothing)."""
    first = _peek(payload, 64 * 1024).lstrip(JSON_WS)[:1]
    if first == b"[":
        return not _array_is_first_of_many_lines(payload)
    return first == b"{" and not _first_line_parses(payload)


def _peek(payload: IO[bytes], size: int) -> bytes:
    return payload.peek(size)  # type: ignore[attr-defined]


def _first_line_parses(payload: IO[bytes]) -> bool:
    """NDJSON unless none of the first few lines is a JSON value (a pretty-printed document)."""
    peeked = _peek(payload, 1024 * 1024)
    lines = [ln for ln in peeked.split(b"\n")[:-1] if ln.strip(JSON_WS)][:3]
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
    peeked = _peek(payload, 1024 * 1024)
    first, newline, rest = peeked.lstrip(JSON_WS).partition(b"\n")
    if not newline or not rest.strip(JSON_WS):
        return False
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        return False
    return True


def decode_document(payload: IO[bytes], chunk_bytes: int, fast: bool = True) -> Iterator[Chunk]:
    """A JSON array of records, or one or more (pretty-printed) JSON objects, streamed."""
    batch: list[tuple[bytes, int]] = []
    size = index = record_index = 0
    for item in documents.elements(payload):
        if isinstance(item, documents.Element):
            batch.append((item.text, item.line))
            size += len(item.text)
            # Each element is decoded on its own (no bulk read in place): the per-line cap.
            if size < chunk_bytes and len(batch) < screen.MAX_EXACT_RECORDS_PER_CHUNK:
                continue
        if batch:
            chunk = next(line_chunks(batch, index, record_index, fast, single=True))
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
            yield rejected_chunk(index, rejected)
        elif isinstance(item, documents.Broken):
            yield from _salvage(item, chunk_bytes, index, record_index, fast)
    if batch:
        yield next(line_chunks(batch, index, record_index, fast, single=True))


def _salvage(
    broken: documents.Broken, chunk_bytes: int, index: int, record_index: int, fast: bool
) -> Iterator[Chunk]:
    """What follows a broken spot, line by line, so the good records after it survive."""
    line = broken.line
    for piece in slices(broken.rest, chunk_bytes):
        if isinstance(piece, Oversized):
            yield rejected_chunk(index, piece.rejected(line, record_index))
            index, record_index, line = index + 1, record_index + 1, line + 1
            continue
        data = piece.data
        del piece
        lines = []
        for n, text in enumerate(bytes(data).split(b"\n"), line):
            stripped = text.strip(JSON_WS).rstrip(b",").strip(JSON_WS)
            if stripped and stripped not in (b"]", b"["):
                lines.append((stripped, n))
        line += bytes(data).count(b"\n")
        del data
        for chunk in line_chunks(lines, index, record_index, fast):
            index, record_index = index + 1, record_index + chunk.records
            yield chunk
