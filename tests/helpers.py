"""Test helpers: encode records as raw lines, run a transform, read back what the lake holds."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from handlers.core.entries import load_entries
from handlers.core.storage import PROCESSED_PREFIX, QUARANTINE_PREFIX, LocalStorage, Storage

# One valid record, as it would arrive on the wire (money as JSON numbers).
GOOD_RECORD: dict[str, Any] = {
    "transaction_id": "t-1",
    "timestamp": "2026-01-05T10:00:00+02:00",
    "customer_id": "C1",
    "product_id": "P01001",
    "product_name": "Wireless Earbuds",
    "category": "Electronics",
    "quantity": 2,
    "price": 79.99,
    "total_amount": 159.98,
}


def encode(record: Any) -> bytes:
    """One JSON line; Decimals keep their exact digits."""

    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            return orjson.Fragment(format(value, "f"))
        if type(value) is int and not -(2**63) <= value < 2**63:
            return orjson.Fragment(str(value))  # orjson stops at 64 bits; JSON doesn't
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return orjson.dumps(plain(record))


@dataclass
class LakeContents:
    """Everything the lake holds below processed/ and quarantine/."""

    rows: list[dict[str, Any]]  # the table's rows (current snapshot)
    entries: list[dict[str, Any]]  # quarantine entries (numbers exact)
    files: dict[str, bytes]  # every object, for byte-level comparisons


def read_lake(storage: Storage) -> LakeContents:
    """The table's current snapshot (read by pyiceberg), quarantine entries, and every object."""
    from handlers.core.table import load_table

    files: dict[str, bytes] = {}
    entries: list[dict[str, Any]] = []
    for info in storage.list(PROCESSED_PREFIX):
        files[info.key] = storage.read_bytes(info.key)
    for info in storage.list(QUARANTINE_PREFIX):
        data = storage.read_bytes(info.key)
        files[info.key] = data
        entries.extend(load_entries(data))
    rows = load_table(storage).scan().to_arrow().to_pylist() if files else []
    return LakeContents(rows, entries, files)


def table_rows(storage: Storage) -> list[dict[str, Any]]:
    """Rows of the table's current snapshot."""
    from handlers.core.table import load_table

    return load_table(storage).scan().to_arrow().to_pylist()


class Crash(Exception):
    """A process dying mid-operation (not a PipelineError: nothing may catch it)."""


class CrashingStorage(LocalStorage):
    """A local lake dying before the Nth write or delete, like a killed process.

    A LocalStorage itself (not a wrapper), so the lake's Iceberg catalog opens as usual;
    the table's own metadata writes are not counted, only the pipeline's objects.
    """

    def __init__(self, inner: LocalStorage, budget: int) -> None:
        super().__init__(inner.root)
        self.budget = budget

    def _spend(self) -> None:
        if self.budget <= 0:
            raise Crash
        self.budget -= 1

    def put_bytes(self, key: str, data: bytes) -> None:
        self._spend()
        super().put_bytes(key, data)

    def delete(self, key: str) -> None:
        self._spend()
        super().delete(key)


_SCRATCH: list[str] = []


def scratch_dir(prefix: str) -> str:
    """A temporary directory for one hypothesis example, removed when the test ends.

    Property tests make one per example (hundreds per run); tests/conftest.py removes
    them after each test through `remove_scratch_dirs`.
    """
    path = tempfile.mkdtemp(prefix=prefix)
    _SCRATCH.append(path)
    return path


def remove_scratch_dirs() -> None:
    """Delete every directory `scratch_dir` made so far."""
    while _SCRATCH:
        shutil.rmtree(_SCRATCH.pop(), ignore_errors=True)
