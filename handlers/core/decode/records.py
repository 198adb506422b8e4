"""Chunks from records already split out (document elements, salvaged or screened lines)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from handlers.core.decode.canonical import looks_clean, read_screened
from handlers.core.decode.chunk import Chunk
from handlers.core.decode.exact import decode_exactly
from schemas import input_arrow_schema

_GROUP = 50_000  # records per chunk when a caller hands over many at once


def in_file_order(
    parts: list[tuple[pa.Table, np.ndarray]], errors: dict[int, list[tuple[str, str]]]
) -> tuple[pa.Table, np.ndarray, dict[int, list[tuple[str, str]]]]:
    """Tables decoded by different paths, as one in file order (errors keyed to match).

    `parts` pairs each table with each row's position; `errors` is keyed by row in the
    concatenation. File order makes "first occurrence" mean first in the file.
    """
    if parts:
        table = pa.concat_tables([t for t, _ in parts])
        at = np.concatenate([a for _, a in parts]).astype(np.int64)
    else:
        table = input_arrow_schema().empty_table()
        at = np.zeros(0, dtype=np.int64)
    order = np.argsort(at, kind="stable")
    if (order != np.arange(len(order))).any():
        table = table.take(pa.array(order))
        at = at[order]
        new_row = np.empty(len(order), dtype=np.int64)
        new_row[order] = np.arange(len(order))
        errors = {int(new_row[k]): v for k, v in errors.items()}
    return table, at, errors


def line_chunks(
    lines: list[tuple[bytes, int]],
    index: int,
    record_index: int,
    fast: bool,
    single: bool = False,
) -> Iterator[Chunk]:
    """Chunks from (text, line) records: Arrow for those `looks_clean` passes, else exact.

    `single` makes one chunk of them all (even of none); `fast=False` sends every record
    down the exact path.
    """
    step = max(len(lines) if single else _GROUP, 1)
    for start in range(0, max(len(lines), 1), step):
        part = lines[start : start + step]
        if not part and not single:
            return
        chunk = _assemble(index, part, record_index, fast)
        record_index += chunk.records
        index += 1
        yield chunk


def _assemble(index: int, part: list[tuple[bytes, int]], record_index: int, fast: bool) -> Chunk:
    clean = [p for p, (text, _) in enumerate(part) if fast and looks_clean(text)]
    parts: list[tuple[pa.Table, np.ndarray]] = []
    table = read_screened([part[p][0] for p in clean]) if clean else None
    if table is not None:
        parts.append((table, np.array(clean, dtype=np.int64)))
    bulk = set(clean) if table is not None else set()
    exact = decode_exactly(
        (p, text, line, record_index + p) for p, (text, line) in enumerate(part) if p not in bulk
    )
    if exact.rows:
        rows = pa.Table.from_pylist(exact.rows, schema=input_arrow_schema())
        parts.append((rows, np.array(exact.at, dtype=np.int64)))
    errors = {len(bulk) + k: v for k, v in exact.errors.items()}
    table, at, errors = in_file_order(parts, errors)
    exact.rejected.sort(key=lambda r: r.record_index)
    positions = at.tolist()
    return Chunk(
        index=index,
        table=table,
        lines=[part[p][1] for p in positions],
        record_indexes=[record_index + p for p in positions],
        raws=[part[p][0] for p in positions],
        decode_errors=errors,
        rejected=exact.rejected,
    )
