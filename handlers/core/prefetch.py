"""Decode ahead: the next chunk is decoded, hashed and parsed on a worker thread."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from handlers.core.decode import Chunk
from handlers.core.seen import SeenIds
from schemas import parse_instants


@dataclass
class Ahead:
    """A decoded chunk, with what the decode-ahead worker worked out for it too."""

    chunk: Chunk
    id_hashes: np.ndarray | None = None  # SeenIds.hashes of every row's transaction_id
    instants: pa.Array | None = None  # parse_instants of the whole timestamp column


def work_ahead(chunk: Chunk) -> Ahead:
    table = chunk.table
    if not table.num_rows:
        return Ahead(chunk)
    return Ahead(
        chunk,
        id_hashes=SeenIds.hashes(table.column("transaction_id")),
        instants=parse_instants(table.column("timestamp")),
    )


@contextmanager
def prefetched(
    chunks: Iterator[Chunk], depth: int = 1, head_start: int = 2
) -> Iterator[Iterator[Ahead]]:
    """The chunks, decoded `depth` ahead on a worker thread while the caller works.

    Decoding is mostly Arrow and numpy work that releases the GIL, so on two cores it
    overlaps validation and writing. The worker also hashes the ids and parses the
    timestamps of its chunk, unless the caller is already waiting for it (then the
    caller, idle otherwise, does that). At most `depth + 1` chunks exist at once, except
    that the worker may decode `head_start` before the caller takes the first: it works
    through the caller's one-time set-up (the table, the catalog) instead of idling.
    Errors (a failed read) surface in the caller, in order.
    """
    ready: queue.Queue[tuple[Ahead | None, BaseException | None]] = queue.Queue()
    go = _Permits(depth, head_start)
    stop = threading.Event()
    waiting = threading.Event()  # the caller is blocked on the next chunk

    def work() -> None:
        try:
            while True:
                go.acquire()
                if stop.is_set():
                    return
                chunk = next(chunks, None)
                if chunk is None:
                    ready.put((None, None))
                    return
                # A waiting caller gets the chunk now and does the rest itself.
                ready.put((Ahead(chunk) if waiting.is_set() else work_ahead(chunk), None))
                del chunk
        except BaseException as e:  # handed to the caller, who re-raises it
            ready.put((None, e))

    def handed() -> Iterator[Ahead]:
        while True:
            waiting.set()
            try:
                ahead, error = ready.get()
            finally:
                waiting.clear()
            if error is not None:
                raise error
            if ahead is None:
                return
            go.taken()  # decode the next one while this one is handled
            yield ahead
            del ahead

    worker = threading.Thread(target=work, name="decode-ahead", daemon=True)
    worker.start()
    try:
        yield handed()
    finally:
        stop.set()
        go.wake()  # the worker, if it waits for a go
        worker.join()
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # the decoder's own cleanup, now that no thread runs it


class _Permits:
    """How many chunks the worker may decode: `head_start` at first, then `depth` ahead."""

    def __init__(self, depth: int, head_start: int) -> None:
        self._go = threading.Semaphore(max(depth, head_start))
        self._withheld = max(head_start - depth, 0)  # head-start permits not given back

    def acquire(self) -> None:
        self._go.acquire()

    def taken(self) -> None:
        """The caller took a chunk: one more may be decoded, unless it was a head start's."""
        if self._withheld:
            self._withheld -= 1
        else:
            self._go.release()

    def wake(self) -> None:
        self._go.release()
