"""UTF-16 input, recognised by its byte-order mark or its NUL pattern, read as UTF-8."""

from __future__ import annotations

import codecs
import io
from typing import IO, Any

_STEP = 1024 * 1024


def utf16_encoding(head: bytes) -> str | None:
    """The UTF-16 codec `head` starts with, or None (a JSON text starts with ASCII)."""
    if head.startswith(codecs.BOM_UTF16_LE) and not head.startswith(codecs.BOM_UTF32_LE):
        return "utf-16"  # the codec reads and drops the mark
    if head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16"
    # No mark: JSON begins with an ASCII character, so one of the first two bytes is NUL.
    if len(head) >= 4 and head[1] == 0 and head[3] == 0 and head[0] and head[2]:
        return "utf-16-le"
    if len(head) >= 4 and head[0] == 0 and head[2] == 0 and head[1] and head[3]:
        return "utf-16-be"
    return None


class Utf16AsUtf8(io.RawIOBase):
    """A UTF-16 stream re-encoded as UTF-8 in bounded steps; bad sequences become U+FFFD."""

    def __init__(self, inner: IO[bytes], encoding: str) -> None:
        self._inner = inner
        # surrogatepass: a lone surrogate comes through as bytes that fail the utf8 check.
        self._decoder = codecs.getincrementaldecoder(encoding)("surrogatepass")
        self._pending = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending and not self._done:
            data = self._inner.read(_STEP)
            self._done = not data
            try:
                text = self._decoder.decode(data, final=self._done)
            except UnicodeDecodeError:
                # Not UTF-16 after all (or a cut-off last byte): the bytes as they are,
                # which the decoder then quarantines (utf8/json_syntax), never drops.
                self._pending = data or b"\xff"
                continue
            self._pending = text.encode("utf-8", "surrogatepass")
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n
