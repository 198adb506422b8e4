"""Per-object isolation in the real handler: a poison file neither loops nor blocks others."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from handlers import transformer
from handlers.core import transform
from handlers.core.errors import StorageError
from handlers.core.poison import ATTEMPTS_PREFIX, MAX_ATTEMPTS
from handlers.core.storage import LocalStorage, S3Storage
from tests.helpers import GOOD_RECORD, encode, read_lake

EVENTS = Path(__file__).resolve().parent.parent / "events"
ROOT = Path(__file__).resolve().parents[2]


def event(name: str, bucket: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text().replace("BUCKET", bucket))


@pytest.fixture
def poisoned(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug that only raw/poison.jsonl triggers (any non-storage exception will do)."""
    real_plan = transform._ChunkWriter.plan

    def plan(self: Any, chunk: Any, result: Any, ahead: Any = None) -> Any:
        if self.info.key == "raw/poison.jsonl":
            raise RecursionError("maximum recursion depth exceeded (simulated parser bug)")
        return real_plan(self, chunk, result, ahead)

    monkeypatch.setattr(transform._ChunkWriter, "plan", plan)


def test_poison_file_is_quarantined_after_its_attempts_and_good_file_is_processed(
    bucket: str, poisoned: None
) -> None:
    storage = S3Storage(bucket)
    good = [{**GOOD_RECORD, "transaction_id": f"g-{i}"} for i in range(5)]
    storage.put_bytes("raw/poison.jsonl", b"\n".join(encode(r) for r in good))
    storage.put_bytes("raw/good.jsonl", b"\n".join(encode(r) for r in good))
    put = event("s3_put_poison_then_good.json", bucket)

    for attempt in range(1, MAX_ATTEMPTS):
        # Lambda's delivery and its retries: each fails (so Lambda retries) ...
        with pytest.raises(StorageError, match="simulated parser bug"):
            transformer.handler(put)
        # ... but the good file behind the poison one was processed the first time.
        lake = read_lake(storage)
        assert sorted(r["transaction_id"] for r in lake.rows) == [f"g-{i}" for i in range(5)]
        (state,) = [i.key for i in storage.list(ATTEMPTS_PREFIX)]
        assert json.loads(storage.read_bytes(state))["attempts"] == attempt

    result = transformer.handler(put)  # the last attempt: quarantined whole, not raised
    by_key = {o["source_key"]: o for o in result["objects"]}
    assert by_key["raw/good.jsonl"]["skipped"] == "already processed"
    poison = by_key["raw/poison.jsonl"]
    assert (poison["records_in"], poison["quarantined"]) == (1, 1)
    assert poison["quarantined_by_check"] == {"transform_failed": 1}
    lake = read_lake(storage)
    (entry,) = lake.entries
    assert entry["source_key"] == "raw/poison.jsonl"
    assert entry["errors"][0]["check"] == "transform_failed"
    assert "simulated parser bug" in entry["errors"][0]["value"]
    assert f"{MAX_ATTEMPTS} times" in entry["detail"]
    assert not list(storage.list(ATTEMPTS_PREFIX))  # the counter is gone with the file

    # Redelivered once more: nothing loops, nothing changes.
    again = transformer.handler(put)
    assert all(o["skipped"] == "already processed" for o in again["objects"])
    assert read_lake(storage).files == lake.files


def test_missing_bucket_fails_with_a_clear_error(s3_endpoint: str) -> None:
    put = event("s3_put_poison_then_good.json", "no-such-bucket-4242")
    with pytest.raises(StorageError, match="NoSuchBucket") as raised:
        transformer.handler(put)
    assert "no-such-bucket-4242" in str(raised.value)
    assert "and 1 more" in str(raised.value)  # both objects were attempted


def test_stray_temporaries_of_a_dead_writer_are_removed_at_the_next_write(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put_bytes("quarantine/x.jsonl", b"{}\n")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    dead_pid = int(dead.stdout)
    stray = tmp_path / "quarantine" / f".tmp-x.jsonl.{dead_pid}.abc"
    live = tmp_path / "quarantine" / f".tmp-x.jsonl.{os.getppid()}.def"  # a running writer
    other = tmp_path / "quarantine" / f".tmp-y.jsonl.{dead_pid}.ghi"  # another key's
    for path in (stray, live, other):
        path.write_bytes(b"partial")
    storage.put_bytes("quarantine/x.jsonl", b"{}\n{}\n")
    assert not stray.exists() and live.exists() and other.exists()
    assert [i.key for i in storage.list("quarantine/")] == ["quarantine/x.jsonl"]


def test_concurrent_cli_transforms_of_one_file_do_not_collide(tmp_path: Path) -> None:
    source = tmp_path / "same.jsonl"
    source.write_bytes(
        b"\n".join(encode({**GOOD_RECORD, "transaction_id": f"c-{i}"}) for i in range(50))
    )
    lake = tmp_path / "lake"
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "pipeline", "transform", str(source), "--lake", str(lake)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    outcomes = [(run.wait(timeout=120), run.stderr.read()) for run in runs]
    assert all(code == 0 for code, _ in outcomes), outcomes
    assert not list(lake.rglob(".tmp-*"))
