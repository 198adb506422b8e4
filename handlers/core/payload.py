"""The raw payload as plain UTF-8 bytes: gzip undone (bounded), byte-order marks and UTF-16."""

from __future__ import annotations

import io
import zlib
from typing import IO, Any

from handlers.core import screen
from handlers.core.transcode import Utf16AsUtf8, utf16_encoding

_BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"
_READ_STEP = 1024 * 1024


class _Prefixed(io.RawIOBase):
    """A read-only stream that replays bytes already peeked from another stream."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        n = 0
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
        if n < len(view):
            # Fill the rest too: a short first read would defeat peek() for the BOM.
            readinto = getattr(self._rest, "readinto", None)
            if readinto is not None:
                n += readinto(view[n:]) or 0  # straight into the caller's buffer
            else:
                # Bounded reads: a 32 MB request must not build a 32 MB temporary.
                data = self._rest.read(min(len(view) - n, _READ_STEP))
                view[n : n + len(data)] = data
                n += len(data)
        return n


class _Gunzip(io.RawIOBase):
    """Streaming gunzip that keeps every byte it could decompress.

    GzipFile discards the data of a read that hits a truncated or corrupt stream; here
    the stream just ends there and `error` says why, so the good part is still processed.
    """

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""
        self._tail = b""
        self.error: str | None = None
        self._done = False
        self._compressed = 0  # bytes read from the object, for the ratio limit
        self._inflated = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending and not self._done:
            self._fill()
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _next_input(self) -> bytes:
        if self._tail:
            data, self._tail = self._tail, b""
            return data
        data = self._inner.read(64 * 1024)
        self._compressed += len(data)
        return data

    def _fill(self) -> None:
        if self._z.eof:
            rest = self._z.unused_data + self._tail
            self._tail = b""
            if not rest.strip(b"\x00"):
                more = self._inner.read(64 * 1024)
                self._compressed += len(more)
                rest += more
            if not rest.strip(b"\x00"):
                self._done = True  # end of the last member (trailing NULs are padding)
                return
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)  # the next gzip member
            compressed = rest
        else:
            compressed = self._next_input()
            if not compressed:
                self._pending = self._z.flush()
                self._done = True
                self.error = "gzip stream truncated before its end"
                return
        try:
            # Bounded output per call: a small bomb can't inflate all at once.
            self._pending = self._z.decompress(compressed, 8 * 1024 * 1024)
        except zlib.error as e:
            self._done = True
            self.error = f"gzip stream corrupt: {e}"
            return
        self._tail = self._z.unconsumed_tail
        self._inflated += len(self._pending)
        self._check_limits()

    def _check_limits(self) -> None:
        """Stop a decompression bomb: past a size, or a ratio no real NDJSON reaches."""
        if self._inflated > screen.MAX_INFLATED_BYTES:
            self.error = f"gzip expands past the {screen.MAX_INFLATED_BYTES}-byte limit"
        else:
            # Against what was consumed, not read ahead: a bomb trips at its first block.
            consumed = max(self._compressed - len(self._tail), 1)
            if (
                self._inflated > screen.RATIO_GRACE_BYTES
                and self._inflated > screen.MAX_GZIP_RATIO * consumed
            ):
                self.error = (
                    f"gzip expands over {screen.MAX_GZIP_RATIO} times its size "
                    f"({consumed} -> {self._inflated}+ bytes): a decompression bomb"
                )
        if self.error is not None:
            self._pending = b""
            self._done = True


def open_payload(stream: IO[bytes]) -> tuple[IO[bytes], _Gunzip | None]:
    """Undo gzip (by magic bytes, whatever the extension), a UTF-8 mark and UTF-16."""
    head = stream.read(2)
    reader: IO[bytes] = io.BufferedReader(_Prefixed(head, stream), 1024 * 1024)
    guard = None
    if head == _GZIP_MAGIC:
        guard = _Gunzip(reader)
        reader = io.BufferedReader(guard, 1024 * 1024)
    start = reader.read(4)
    if start.startswith(_BOM):
        start = start[len(_BOM) :]
    elif encoding := utf16_encoding(start):
        # Read as UTF-8 from here on: split at UTF-16's newlines, no stray NUL halves.
        utf8 = Utf16AsUtf8(io.BufferedReader(_Prefixed(start, reader)), encoding)
        return io.BufferedReader(utf8, 1024 * 1024), guard
    reader = io.BufferedReader(_Prefixed(start, reader), 1024 * 1024)
    return reader, guard
