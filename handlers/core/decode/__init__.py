"""Decode raw files of any supported shape into bounded chunks of typed rows."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import IO

from handlers.core.decode.canonical import canonical_line_pattern
from handlers.core.decode.chunk import Chunk, Rejected, rejected_chunk
from handlers.core.decode.document import decode_document, is_document
from handlers.core.decode.exact import decode_record, typed_row
from handlers.core.decode.ndjson import decode_ndjson
from handlers.core.decode.slices import slices
from handlers.core.payload import open_payload
from schemas.transaction import CHECK_GZIP

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "FAST_PATH_ENV",
    "Chunk",
    "Rejected",
    "canonical_line_pattern",
    "decode",
    "decode_record",
    "fast_path_enabled",
    "typed_row",
]

DEFAULT_CHUNK_BYTES = 32 * 1024 * 1024
# Set to 0 to decode every record on the exact path (e.g. after a pyarrow upgrade that
# the fast path's proof was not made for): slower, never different.
FAST_PATH_ENV = "DECODE_FAST_PATH"


def fast_path_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the Arrow fast path is on: unless DECODE_FAST_PATH is 0, false, no or off."""
    env = os.environ if environ is None else environ
    return env.get(FAST_PATH_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def decode(
    stream: IO[bytes], chunk_bytes: int = DEFAULT_CHUNK_BYTES, fast: bool | None = None
) -> Iterator[Chunk]:
    """Chunks of typed rows from a raw object: NDJSON, a JSON array or a JSON document.

    `fast` (default: `fast_path_enabled()`) lets Arrow decode the records it provably
    reads exactly as the exact path does; False decodes every record on the exact path.
    Both give the same rows, errors and rejections (tests/property/test_decode_differential.py).
    """
    if fast is None:
        fast = fast_path_enabled()
    payload, guard = open_payload(stream)
    if is_document(payload):
        chunks = decode_document(payload, chunk_bytes, fast)
    else:
        chunks = decode_ndjson(slices(payload, chunk_bytes), fast)
    index = record_index = 0
    for chunk in chunks:
        index, record_index = chunk.index + 1, record_index + chunk.records
        yield chunk
    if guard is not None and guard.error is not None:
        # The compressed stream broke: what it held past this point is unreadable, so
        # it becomes one quarantine entry rather than vanishing.
        yield rejected_chunk(index, Rejected(b"", CHECK_GZIP, None, record_index, guard.error))
