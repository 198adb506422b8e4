"""The real Lambda handlers, on real event JSON, against S3 served by moto over HTTP."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from handlers import generator, transformer
from handlers.core.errors import EventError
from handlers.core.storage import S3Storage
from tests.helpers import GOOD_RECORD, encode, read_lake

EVENTS = Path(__file__).resolve().parent.parent / "events"


def event(name: str, bucket: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text().replace("BUCKET", bucket))


@pytest.fixture
def generator_env(bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("LAKE_URL", f"s3://{bucket}")
    monkeypatch.setenv("BATCH_SIZE", "60")
    monkeypatch.setenv("FAULT_RATE", "0")
    generator._settings.cache_clear()
    yield bucket
    generator._settings.cache_clear()


def test_schedule_then_s3_event_runs_end_to_end(generator_env: str) -> None:
    bucket = generator_env
    written = generator.handler(event("eventbridge_schedule.json", bucket))
    # The scheduled time names the batch, so the S3 event fixture points at it.
    put = event("s3_put.json", bucket)
    assert written["key"] == put["Records"][0]["s3"]["object"]["key"]
    assert written["records"] == 60

    result = transformer.handler(put)
    (summary,) = result["objects"]
    assert (summary["records_in"], summary["processed"], summary["quarantined"]) == (60, 60, 0)
    lake = read_lake(S3Storage(bucket))
    assert len(lake.rows) == 60 and not lake.entries
    data = [k for k in lake.files if k.startswith("processed/data/")]
    assert data and all(k.startswith("processed/data/year=2026/month=11/day=26/") for k in data)

    # S3 delivers at least once: the same event again changes nothing.
    again = transformer.handler(put)
    assert again["objects"][0]["skipped"] == "already processed"
    assert read_lake(S3Storage(bucket)).files == lake.files


def test_url_encoded_key_with_spaces_is_decoded(bucket: str) -> None:
    key = "raw/backfill/Nov 2026 orders (part 1).json.gz"

    # A gzipped JSON array, whatever the extension says.
    S3Storage(bucket).put_bytes(key, gzip.compress(json.dumps([GOOD_RECORD, {"x": 1}]).encode()))
    result = transformer.handler(event("s3_put_url_encoded_key.json", bucket))
    (summary,) = result["objects"]
    assert summary["source_key"] == key
    assert (summary["processed"], summary["quarantined"]) == (1, 1)
    (row,) = read_lake(S3Storage(bucket)).rows
    assert row["timestamp"].isoformat() == "2026-01-05T08:00:00+00:00"
    assert (row["year"], row["month"], row["day"], row["hour"]) == (2026, 1, 5, 8)


def test_several_records_in_one_event_and_keys_outside_raw(bucket: str) -> None:
    storage = S3Storage(bucket)
    good = {**GOOD_RECORD, "transaction_id": "a", "timestamp": "2026-01-01T00:00:00Z"}
    storage.put_bytes("raw/a.jsonl", encode(good) + b"\nnot json\n")
    storage.put_bytes("raw/b.json", json.dumps({**good, "transaction_id": "b"}, indent=2).encode())
    result = transformer.handler(event("s3_put_two_records.json", bucket))
    by_key = {o["source_key"]: o for o in result["objects"]}
    assert by_key["raw/a.jsonl"]["processed"] == 1
    assert by_key["raw/a.jsonl"]["quarantined_by_check"] == {"json_syntax": 1}
    assert by_key["raw/b.json"]["processed"] == 1
    assert result["skipped"] == [{"key": "processed/not-for-us.parquet", "reason": "outside raw/"}]


def test_s3_test_event_is_a_no_op(bucket: str) -> None:
    assert transformer.handler(event("s3_test_event.json", bucket)) == {
        "objects": [],
        "skipped": [],
        "failed": [],
    }


def test_object_deleted_before_processing_is_skipped(bucket: str) -> None:
    result = transformer.handler(event("s3_put.json", bucket))
    assert result["objects"] == []
    assert result["skipped"][0]["reason"] == "object no longer exists"


def test_malformed_event_fails_with_a_clear_error(bucket: str) -> None:
    with pytest.raises(EventError, match="Records"):
        transformer.handler({"hello": "world"})
    with pytest.raises(EventError, match=r"Records\[0\]"):
        transformer.handler({"Records": [{"s3": {}}]})


def test_generator_rejects_bad_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKE_URL", "s3://b")
    monkeypatch.setenv("FAULT_RATE", "1.5")
    generator._settings.cache_clear()
    with pytest.raises(Exception, match="FAULT_RATE"):
        generator.handler({})
    monkeypatch.delenv("LAKE_URL")
    generator._settings.cache_clear()
    with pytest.raises(Exception, match="LAKE_URL"):
        generator.handler({})
    generator._settings.cache_clear()
