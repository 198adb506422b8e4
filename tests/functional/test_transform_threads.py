"""The transform's row-writing thread: nothing written after it returns, its errors raised."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from handlers.core import transform as transform_module
from handlers.core.errors import StorageError
from handlers.core.storage import LocalStorage
from handlers.core.transform import transform_object
from tests.helpers import GOOD_RECORD, Crash, encode

CHUNK_BYTES = 2048  # a few records per chunk: the file is several chunks
DATA = "processed/data/"


def _lake(tmp_path: Path) -> LocalStorage:
    lines = []
    for n in range(40):
        bad = n % 8 == 0  # every chunk has a bad record: each writes a quarantine file
        record = {**GOOD_RECORD, "transaction_id": f"t-{n}", "quantity": 0 if bad else 2}
        lines.append(encode(record) + b"\n")
    storage = LocalStorage(tmp_path / "lake")
    storage.put_bytes("raw/batch.ndjson", b"".join(lines))
    return storage


class SlowRowsFailingEntries(LocalStorage):
    """Data files land slowly; the second chunk's quarantine file kills the process."""

    def __init__(self, inner: LocalStorage) -> None:
        super().__init__(inner.root)
        self.entry_files = 0

    def put_bytes(self, key: str, data: bytes) -> None:
        if key.startswith(DATA):
            time.sleep(0.8)  # still writing when the main thread dies
        elif key.startswith("quarantine/"):
            self.entry_files += 1
            if self.entry_files == 2:
                raise Crash
        super().put_bytes(key, data)


def _data_files(storage: LocalStorage) -> set[str]:
    return {info.key for info in storage.list(DATA) if info.key.endswith(".parquet")}


def files_written_after_the_transform_raised(tmp_path: Path) -> set[str]:
    storage = SlowRowsFailingEntries(_lake(tmp_path))
    with pytest.raises(Crash):
        transform_object(storage, "raw/batch.ndjson", chunk_bytes=CHUNK_BYTES)
    at_raise = _data_files(storage)
    time.sleep(1.2)  # longer than a slow data file takes
    return _data_files(storage) - at_raise


def test_no_data_file_is_written_after_the_transform_raised(tmp_path: Path) -> None:
    assert files_written_after_the_transform_raised(tmp_path) == set()
    # The first chunk's rows were handed to the thread before the crash: they landed.
    assert _data_files(LocalStorage(tmp_path / "lake"))


class _NoWaitPool(ThreadPoolExecutor):
    def __exit__(self, *exc: Any) -> bool:
        self.shutdown(wait=False)
        return False


def test_the_check_catches_a_writer_that_does_not_wait_for_its_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transform_module, "ThreadPoolExecutor", _NoWaitPool)
    assert files_written_after_the_transform_raised(tmp_path)


class FailingDataFiles(LocalStorage):
    def put_bytes(self, key: str, data: bytes) -> None:
        if key.startswith(DATA):
            raise StorageError("write", key, "injected", transient=True)
        super().put_bytes(key, data)


def test_a_failed_data_file_write_fails_the_transform(tmp_path: Path) -> None:
    storage = FailingDataFiles(_lake(tmp_path).root)
    with pytest.raises(StorageError, match="injected"):
        transform_object(storage, "raw/batch.ndjson", chunk_bytes=CHUNK_BYTES)
    assert not _data_files(storage)


def test_rows_and_entries_of_every_chunk_are_committed(tmp_path: Path) -> None:
    storage = _lake(tmp_path)
    result = transform_object(storage, "raw/batch.ndjson", chunk_bytes=CHUNK_BYTES)
    assert (result.records_in, result.processed, result.quarantined) == (40, 35, 5)
    assert len(_data_files(storage)) > 1  # one per chunk: the thread wrote them all
