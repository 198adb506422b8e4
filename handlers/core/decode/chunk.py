"""What decoding yields: chunks of typed rows, and the records that never became rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from schemas import input_arrow_schema

JSON_WS = b" \t\r\n"


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
    lines: Sequence[int | None]  # 1-based line of each row (None inside a JSON document)
    record_indexes: Sequence[int]  # position of each row among the file's records
    raws: list[bytes] | None  # original text per row; None until needed (see raw())
    decode_errors: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    source: bytes | memoryview | None = None  # the NDJSON slice, to recover raws lazily
    # Where each row's line starts and ends in `source`; None: row i is non-blank line i.
    spans: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def records(self) -> int:
        return self.table.num_rows + len(self.rejected)

    def release_source(self) -> None:
        """Let go of the raw slice (the largest part of a chunk): raw() is done with."""
        self.raws = self.source = self.spans = None

    def raw(self, row: int) -> bytes:
        if self.raws is None:
            assert self.source is not None
            if self.spans is not None:
                # Only rows that break the contract need their text: cut it out on demand.
                starts, ends = self.spans
                return bytes(self.source[starts[row] : ends[row]]).strip(JSON_WS)
            self.raws = [ln.strip(JSON_WS) for ln in bytes(self.source).split(b"\n")]
            self.raws = [r for r in self.raws if r]
        return self.raws[row]


def rejected_chunk(index: int, rejected: Rejected) -> Chunk:
    """A chunk holding only one thing that never became a row."""
    return Chunk(
        index=index,
        table=input_arrow_schema().empty_table(),
        lines=[],
        record_indexes=[],
        raws=[],
        rejected=[rejected],
    )
