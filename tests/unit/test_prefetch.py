"""Decode-ahead: chunks in order, errors in order, and who hashes a chunk's ids."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest

from handlers.core.decode import Chunk
from handlers.core.prefetch import prefetched, work_ahead
from handlers.core.seen import SeenIds
from schemas import input_arrow_schema, parse_instants


def _chunk(index: int, rows: int = 3) -> Chunk:
    ids = [f"t-{index}-{n}" for n in range(rows)]
    table = pa.Table.from_pylist(
        [{"transaction_id": i, "timestamp": "2026-01-15T10:00:00Z"} for i in ids],
        schema=input_arrow_schema(),
    )
    return Chunk(index, table, list(range(rows)), list(range(rows)), None)


def _slow(chunks: list[Chunk], pause: float, started: threading.Event) -> Iterator[Chunk]:
    for chunk in chunks:
        started.set()
        time.sleep(pause)
        yield chunk


def test_chunks_arrive_in_order_and_work_ahead_matches_the_callers_own() -> None:
    chunks = [_chunk(n) for n in range(5)]
    with prefetched(iter(chunks)) as handed:
        got = list(handed)
    assert [a.chunk.index for a in got] == [0, 1, 2, 3, 4]
    # What the worker makes ahead is what the caller makes itself when it was waiting.
    for chunk in chunks:
        ahead = work_ahead(chunk)
        ids = chunk.table.column("transaction_id")
        assert ahead.id_hashes is not None and ahead.instants is not None
        assert np.array_equal(ahead.id_hashes, SeenIds.hashes(ids))
        assert ahead.instants.equals(parse_instants(chunk.table.column("timestamp")))


def test_a_waiting_caller_gets_the_chunk_at_once_and_a_busy_one_gets_it_worked_ahead() -> None:
    # The worker decodes slowly: the caller waits for every chunk, so it gets them bare.
    started = threading.Event()
    with prefetched(_slow([_chunk(n) for n in range(3)], 0.2, started)) as handed:
        waited = list(handed)
    assert [a.id_hashes for a in waited] == [None, None, None]
    # The caller is slow: each next chunk is ready before it is asked for, hashed ahead.
    started = threading.Event()
    busy = []
    with prefetched(_slow([_chunk(n) for n in range(3)], 0.0, started)) as handed:
        for ahead in handed:
            busy.append(ahead)
            time.sleep(0.2)
    assert all(a.id_hashes is not None for a in busy[1:])
    assert busy[-1].id_hashes is not None and busy[-1].instants is not None


def test_a_failed_read_surfaces_in_the_caller_after_the_chunks_before_it() -> None:
    def failing() -> Iterator[Chunk]:
        yield _chunk(0)
        raise OSError("the object changed")

    seen = []
    with pytest.raises(OSError, match="changed"), prefetched(failing()) as handed:
        for ahead in handed:
            seen.append(ahead.chunk.index)
    assert seen == [0]


def test_work_ahead_leaves_an_empty_chunk_alone() -> None:
    ahead = work_ahead(_chunk(0, rows=0))
    assert ahead.id_hashes is None and ahead.instants is None


def test_two_chunks_are_decoded_before_the_first_is_taken_then_one_ahead() -> None:
    produced: list[int] = []

    def counted() -> Iterator[Chunk]:
        for n in range(6):
            produced.append(n)
            yield _chunk(n)

    def settled() -> int:
        time.sleep(0.2)  # the worker has had time to decode whatever it may
        return len(produced)

    with prefetched(counted(), depth=1, head_start=2) as handed:
        assert settled() == 2  # the head start: decoded while the caller set up
        next(handed)
        assert settled() == 2  # the second is ready already: nothing more is decoded
        next(handed)
        assert settled() == 3  # from here on, one ahead of the chunk in hand
        next(handed)
        assert settled() == 4
