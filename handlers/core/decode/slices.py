"""Cut a payload into bounded slices that end on a line boundary, without copying."""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import numpy as np

from handlers.core import screen
from handlers.core.decode.chunk import Rejected
from schemas.transaction import CHECK_LINE_TOO_LARGE

READ_STEP = 1024 * 1024
SCAN_STEP = 4 * 1024 * 1024


@dataclass
class Oversized:
    """A line over MAX_LINE_BYTES: its first bytes and its length, in place of its text."""

    head: bytes
    size: int

    def rejected(self, line: int, record_index: int) -> Rejected:
        detail = f"line of {self.size} bytes is over the {screen.MAX_LINE_BYTES}-byte limit"
        return Rejected(self.head, CHECK_LINE_TOO_LARGE, line, record_index, detail)


def slices(payload: IO[bytes], chunk_bytes: int) -> Iterator[bytes | memoryview | Oversized]:
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
        room = 0 if at_end else max(chunk_bytes - len(carry), min(chunk_bytes, READ_STEP))
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
                yield Oversized(bytes(buffer[: screen.ENTRY_RAW_CAP]), size)
            elif at_end:
                yield carry  # the last line, without its newline
                return
            continue
        carry = buffer[cut + 1 : end]
        piece = memoryview(buffer)[: cut + 1]
        del buffer  # the view keeps the map alive exactly as long as the chunk needs it
        yield piece
        del piece


def _records_cut(buffer: mmap.mmap, end: int) -> int:
    """Where a slice ends: its last newline, or the one that keeps it to MAX_RECORDS_PER_CHUNK."""
    cut = buffer.rfind(b"\n", 0, end)
    if cut < 0 or end < screen.MAX_RECORDS_PER_CHUNK * 2:
        return cut  # too short to hold that many records
    view = np.frombuffer(buffer, np.uint8, count=end)
    seen = 0
    for start in range(0, end, SCAN_STEP):
        newlines = np.flatnonzero(view[start : start + SCAN_STEP] == 10)
        if seen + len(newlines) > screen.MAX_RECORDS_PER_CHUNK:
            return start + int(newlines[screen.MAX_RECORDS_PER_CHUNK - seen - 1])
        seen += len(newlines)
    return cut


def _skip_line(payload: IO[bytes], held: int) -> tuple[int, bytes]:
    """Read past the rest of an oversized line: its total size, and what follows it."""
    size = held
    while block := payload.read(READ_STEP):
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


def line_offsets(data: bytes | memoryview) -> np.ndarray:
    """Where each line starts, then the end: line i is data[o[i]:o[i + 1]], newline kept."""
    view = np.frombuffer(data, np.uint8)
    parts = [np.zeros(1, np.int64)]
    for start in range(0, len(view), SCAN_STEP):  # bounded temporaries
        parts.append(np.flatnonzero(view[start : start + SCAN_STEP] == 10) + (start + 1))
    offsets = np.concatenate(parts)
    if offsets[-1] != len(view):
        offsets = np.append(offsets, len(view))
    return offsets
