"""JSON documents (an array of records, or pretty-printed objects) split as a stream.

The document is read through a bounded window of text: each element is cut out verbatim
(exact digits, key order, duplicate keys and all) with its line, so a document of any size
costs the window plus one element, never the whole file. An element longer than
MAX_LINE_BYTES is not held: it and the rest of the document are reported as too large.
"""

from __future__ import annotations

import codecs
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from handlers.core import screen

_STEP = 8 * 1024 * 1024
_WS = " \t\r\n"


@dataclass
class Element:
    """One element's verbatim text and the line it starts on."""

    text: bytes
    line: int


@dataclass
class Broken:
    """Where the document stopped making sense: the rest, as a stream, from `line` on."""

    rest: IO[bytes]
    line: int


@dataclass
class TooLarge:
    """An element over MAX_LINE_BYTES: its first bytes, where it starts, what was skipped."""

    head: bytes
    line: int
    skipped: int


class _Window:
    """A sliding window of decoded text over the payload."""

    def __init__(self, payload: IO[bytes]) -> None:
        self.payload = payload
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.doc = ""
        self.pos = 0
        self.line = 1
        self.eof = False
        self.undecoded = b""  # bytes past an invalid UTF-8 sequence: never decoded

    def fill(self) -> bool:
        """Read more text; False at the end (or at invalid UTF-8)."""
        if self.eof:
            return False
        data = self.payload.read(_STEP)
        try:
            text = self.decoder.decode(data, final=not data)
        except UnicodeDecodeError as e:
            # The valid part is decoded; from the bad byte on it goes to the line salvage.
            text = e.object[: e.start].decode("utf-8")
            self.undecoded = bytes(e.object[e.start :])
            self.eof = True
        if not data:
            self.eof = True
        self.doc = self.doc[self.pos :] + text
        self.pos = 0
        return bool(text) or not self.eof

    def skip_ws(self) -> bool:
        """Move past whitespace (counting lines); False if the document ended."""
        while True:
            start = self.pos
            while self.pos < len(self.doc) and self.doc[self.pos] in _WS:
                self.pos += 1
            self.line += self.doc.count("\n", start, self.pos)
            if self.pos < len(self.doc):
                return True
            if not self.fill():
                return False

    def advance(self, end: int) -> None:
        self.line += self.doc.count("\n", self.pos, end)
        self.pos = end

    def rest(self) -> IO[bytes]:
        """The unread part of the document, from the current position, as a stream."""
        head = self.doc[self.pos :].encode("utf-8") + self.undecoded
        self.doc, self.pos = "", 0
        return io.BufferedReader(_Chain(head, self.payload), 1024 * 1024)


class _Chain(io.RawIOBase):
    """Bytes held, then a stream; the held bytes are let go as they are read."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if len(self._head):
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


_DECODER = json.JSONDecoder()


_BROKEN = -1
_TOO_LARGE = -2


def _element_end(window: _Window) -> int:
    """Where the element at the window's position ends, or _BROKEN, or _TOO_LARGE."""
    while True:
        doc, pos = window.doc, window.pos
        try:
            _, end = _DECODER.raw_decode(doc, pos)
        except RecursionError:
            end = screen.element_end(doc, pos)  # the exact path rejects it as json_depth
        except json.JSONDecodeError as e:
            cut_short = e.pos >= len(doc) or e.msg.startswith("Unterminated string")
            if not cut_short or window.eof:
                return _BROKEN
            end = len(doc)
        # At the window's edge an element (or a number) may go on: read more first.
        if end - pos > screen.MAX_LINE_BYTES:
            return _TOO_LARGE
        if end == len(doc) and not window.eof:
            window.fill()
            continue
        return end


def elements(payload: IO[bytes]) -> Iterator[Element | Broken | TooLarge]:
    """The document's elements in order, then what could not be split, if anything."""
    window = _Window(payload)
    if not window.skip_ws():
        return
    in_array = window.doc.startswith("[", window.pos)
    if in_array:
        window.advance(window.pos + 1)
    while window.skip_ws():
        if in_array and window.doc.startswith("]", window.pos):
            window.advance(window.pos + 1)
            if window.skip_ws():  # something after the closing bracket
                yield Broken(window.rest(), window.line)
            return
        end = _element_end(window)
        if end < 0:
            yield _too_large(window) if end == _TOO_LARGE else Broken(window.rest(), window.line)
            return
        yield Element(window.doc[window.pos : end].encode("utf-8"), window.line)
        window.advance(end)
        if in_array and window.skip_ws():
            if window.doc.startswith(",", window.pos):
                window.advance(window.pos + 1)
            elif not window.doc.startswith("]", window.pos):
                yield Broken(window.rest(), window.line)
                return
    if window.undecoded:
        yield Broken(window.rest(), window.line)


def _too_large(window: _Window) -> TooLarge:
    head = window.doc[window.pos : window.pos + screen.ENTRY_RAW_CAP].encode("utf-8")
    skipped = len(window.doc) - window.pos
    window.doc, window.pos = "", 0
    while block := window.payload.read(_STEP):
        skipped += len(block)
    return TooLarge(head[: screen.ENTRY_RAW_CAP], window.line, skipped)
