"""The moto fixture really serves S3 over HTTP on loopback."""

from __future__ import annotations

from handlers.core.storage import S3Storage


def test_s3_storage_round_trip(bucket: str, s3_endpoint: str) -> None:
    assert s3_endpoint.startswith("http://127.0.0.1:")
    storage = S3Storage(bucket)
    storage.put_bytes("raw/a b.json", b'{"x": 1}')
    assert storage.read_bytes("raw/a b.json") == b'{"x": 1}'
    assert [o.key for o in storage.list("raw/")] == ["raw/a b.json"]
    info = storage.stat("raw/a b.json")
    with storage.open_read("raw/a b.json", info.version) as stream:
        assert stream.read() == b'{"x": 1}'
    storage.delete("raw/a b.json")
    assert not storage.exists("raw/a b.json")
