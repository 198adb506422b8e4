"""A transform's parsed timestamp column: parsed once per chunk, for its checks and its writer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
import pyarrow.compute as pc

from schemas.instants import Values, arrow_strings, parse_instants, parsing_instants_with


class InstantCache:
    """The timestamp column of the chunk in hand, and its parse.

    The contract's three timestamp checks and the writer each need the column as
    instants; parsing it is the costliest step of validation. A transform holds one of
    these per run: `hold` gives it each chunk's column (and the parse a worker thread
    already made), and within `checking()` the contract's checks get their answer here.
    A check sees the column, or the column without its nulls (pandera's view): both are
    recognised by comparing Arrow data, far cheaper than parsing. Anything else is parsed.
    """

    def __init__(self) -> None:
        self._strings: pa.Array | pa.ChunkedArray | None = None
        self._parsed: pa.TimestampArray | None = None

    def hold(self, column: Values, parsed: pa.TimestampArray | None = None) -> None:
        """Make `column` the one in hand; `parsed` is its parse if already made."""
        self._strings = arrow_strings(column)
        self._parsed = parsed

    def release(self) -> None:
        """Let the column and its parse go (the chunk is done)."""
        self._strings = self._parsed = None

    @property
    def parsed(self) -> pa.TimestampArray:
        """The column in hand, parsed (now, if nobody has yet)."""
        if self._strings is None:
            raise RuntimeError("no timestamp column held")
        if self._parsed is None:
            self._parsed = parse_instants(self._strings)
        return self._parsed

    def parse(self, values: Values) -> pa.TimestampArray:
        """Exactly `parse_instants(values)`, from the held parse when `values` is that column."""
        held = self._strings
        if held is None:
            return parse_instants(values)
        strings = arrow_strings(values)
        same_shape = len(held) == len(strings) and held.null_count == strings.null_count
        if same_shape and _chunked(held).equals(_chunked(strings)):
            return self.parsed
        # pandera hands its checks the column without nulls: that one is derived too.
        without_nulls = (
            held.null_count > 0
            and strings.null_count == 0
            and len(strings) == len(held) - held.null_count
        )
        if without_nulls and _chunked(pc.drop_null(held)).equals(_chunked(strings)):
            return self.parsed.filter(pc.is_valid(_chunked(held)).combine_chunks())
        return parse_instants(strings)

    @contextmanager
    def checking(self) -> Iterator[None]:
        """Within the block, the contract's timestamp checks parse through this cache."""
        with parsing_instants_with(self.parse):
            yield


def _chunked(values: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    return values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
