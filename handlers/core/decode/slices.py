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


@dataclass
class Slice:
    """Whole lines of a payload (the last slice may lack its newline), and where they start."""

    data: bytes | memoryview
    offsets: np.ndarray  # line i is data[offsets[i]:offsets[i + 1]], newline kept; then the end


def slices(payload: IO[bytes], chunk_bytes: int) -> Iterator[Slice | Oversized]:
    """Bounded slices that end on a line boundary (the last one may not).

    Each slice is read straight into its own anonymous memory map and handed out as a
    view of it: it costs the pages the read fills, once (no concatenated or cut copies),
    and a short last slice costs only its own length. The one scan for newlines that
    bounds a slice's lines also gives where each line starts.
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
        offsets = _line_starts(buffer, end)
        if len(offsets) == 1:  # no newline: one line, so far
            carry = buffer[:end]
            if len(carry) > screen.MAX_LINE_BYTES:
                # One absurd line: never held whole; skipped to its end, then reported.
                size, carry = _skip_line(payload, len(carry))
                yield Oversized(bytes(buffer[: screen.ENTRY_RAW_CAP]), size)
            elif at_end:
                yield Slice(carry, np.array([0, len(carry)], np.int64))  # the last line
                return
            continue
        cut = int(offsets[-1])  # just past the slice's last newline
        carry = buffer[cut:end]
        piece = memoryview(buffer)[:cut]
        del buffer  # the view keeps the map alive exactly as long as the chunk needs it
        yield Slice(piece, offsets)
        del piece


def _line_starts(buffer: mmap.mmap, end: int) -> np.ndarray:
    """0, then just past each newline in buffer[:end], up to MAX_RECORDS_PER_CHUNK lines."""
    view = np.frombuffer(buffer, np.uint8, count=end)
    parts = [np.zeros(1, np.int64)]
    room = screen.MAX_RECORDS_PER_CHUNK
    for start in range(0, end, SCAN_STEP):  # bounded temporaries
        newlines = np.flatnonzero(view[start : start + SCAN_STEP] == 10)[:room]
        parts.append(newlines + (start + 1))
        room -= len(newlines)
        if not room:
            break
    del view  # no export of the map outlives the scan
    return np.concatenate(parts)


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
