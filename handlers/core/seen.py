"""File-wide duplicate check: the set of transaction ids a file (or a source) has claimed."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


class SeenIds:
    """File-wide set of transaction ids, held as 64-bit hashes in sorted buckets.

    Memory is 8 bytes per id rather than the id itself, so a file of any size is
    checked for duplicates without holding its ids. Two distinct ids share a hash with
    probability ~n^2/2^65 (about 1e-7 for 4M ids); such a pair would be quarantined as
    a duplicate, never lost. Hashes are spread over 256 sorted buckets by their top
    byte: adding a chunk's ids rewrites only small buckets, so memory never doubles
    while the set grows.
    """

    _BUCKET_SHIFT = np.uint64(56)
    _EDGES = np.arange(257, dtype=np.uint64)

    def __init__(self) -> None:
        empty = np.zeros(0, dtype=np.uint64)
        self._buckets: list[np.ndarray] = [empty] * 256

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets)

    @staticmethod
    def hashes(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
        # Python's own string hash (SipHash, 64 bits): fast, and stable within the
        # process, which is all a set that is never stored needs.
        values = ids.to_numpy(zero_copy_only=False)
        return np.fromiter(map(hash, values), dtype=np.int64, count=len(values)).view(np.uint64)

    def claim(self, hashes: np.ndarray) -> np.ndarray:
        """Mark which hashes were seen before (in the file or earlier in `hashes`)."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        # A stable sort keeps equal hashes in input order: the first one is the keeper.
        order = np.argsort(hashes, kind="stable")
        ordered = hashes[order]
        seen = np.zeros(len(ordered), dtype=bool)
        seen[1:] = ordered[1:] == ordered[:-1]
        edges = np.searchsorted(ordered >> self._BUCKET_SHIFT, self._EDGES)
        for bucket in np.flatnonzero(edges[1:] > edges[:-1]).tolist():
            lo, hi = int(edges[bucket]), int(edges[bucket + 1])
            part = ordered[lo:hi]
            held = self._buckets[bucket]
            if len(held):
                at = np.minimum(np.searchsorted(held, part), len(held) - 1)
                seen[lo:hi] |= held[at] == part
            fresh = part[~seen[lo:hi]]
            if len(fresh):
                merged = np.concatenate((held, fresh))
                merged.sort(kind="stable")  # two sorted runs: a linear merge
                self._buckets[bucket] = merged
        result = np.empty(len(seen), dtype=bool)
        result[order] = seen
        return result
