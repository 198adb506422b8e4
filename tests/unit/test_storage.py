"""The local backend behaves like a bucket: atomic writes, sorted listing, contained keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers.core.errors import ConfigError, ObjectNotFound, StorageError
from handlers.core.storage import LocalStorage, S3Storage, Storage, open_storage


def test_put_is_atomic_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    lake = LocalStorage(tmp_path)
    lake.put_bytes("processed/year=2026/a.parquet", b"1")
    lake.put_bytes("processed/year=2026/a.parquet", b"2")
    assert lake.read_bytes("processed/year=2026/a.parquet") == b"2"
    assert [p.name for p in (tmp_path / "processed/year=2026").iterdir()] == ["a.parquet"]


def test_listing_is_sorted_and_prefix_scoped(tmp_path: Path) -> None:
    lake = LocalStorage(tmp_path)
    for key in ("raw/b", "raw/a", "rawx/c", "quarantine/d"):
        lake.put_bytes(key, b"x")
    assert [o.key for o in lake.list("raw/")] == ["raw/a", "raw/b"]
    assert [o.key for o in lake.list("raw")] == ["raw/a", "raw/b", "rawx/c"]


def test_version_changes_when_content_changes(tmp_path: Path) -> None:
    lake = LocalStorage(tmp_path)
    lake.put_bytes("raw/a", b"one")
    first = lake.stat("raw/a").version
    lake.put_bytes("raw/a", b"two!")
    assert lake.stat("raw/a").version != first
    with pytest.raises(StorageError, match="changed"):
        lake.open_read("raw/a", first)


def test_missing_and_escaping_keys(tmp_path: Path) -> None:
    lake = LocalStorage(tmp_path / "lake")
    with pytest.raises(ObjectNotFound):
        lake.stat("raw/nope")
    with pytest.raises(StorageError, match="escapes"):
        lake.put_bytes("../outside", b"x")
    lake.delete("raw/nope")  # deleting a missing object is fine, as on S3


def test_open_storage_chooses_backend_by_url(tmp_path: Path) -> None:
    assert isinstance(open_storage("s3://my-bucket"), S3Storage)
    assert isinstance(open_storage(str(tmp_path)), LocalStorage)
    for bad in ("s3://", "s3://bucket/prefix", ""):
        with pytest.raises(ConfigError):
            open_storage(bad)


@pytest.fixture(params=["local", "s3"])
def any_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """Each backend in turn: a local directory, then a bucket on the moto server."""
    if request.param == "local":
        return LocalStorage(tmp_path)
    return S3Storage(request.getfixturevalue("bucket"))


def test_ranged_and_tail_reads_agree_with_slicing(any_storage: Storage) -> None:
    data = bytes(range(256)) * 4
    any_storage.put_bytes("processed/x.bin", data)
    for start, end in [(0, 1), (0, len(data)), (10, 20), (1000, 5000), (len(data), len(data) + 9)]:
        assert any_storage.read_range("processed/x.bin", start, end) == data[start:end]
    assert any_storage.read_range("processed/x.bin", 20, 10) == b""
    for n in (0, 1, 8, len(data), len(data) + 100):
        assert any_storage.read_tail("processed/x.bin", n) == (data[-n:] if n else b"")


def test_ranged_reads_of_an_empty_or_missing_object(any_storage: Storage) -> None:
    any_storage.put_bytes("processed/empty.bin", b"")
    assert any_storage.read_tail("processed/empty.bin", 8) == b""
    assert any_storage.read_range("processed/empty.bin", 0, 8) == b""
    with pytest.raises(ObjectNotFound):
        any_storage.read_tail("processed/missing.bin", 8)
    with pytest.raises(ObjectNotFound):
        any_storage.read_range("processed/missing.bin", 0, 8)
    with pytest.raises(StorageError):
        any_storage.read_range("processed/empty.bin", -1, 8)
