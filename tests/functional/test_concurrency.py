"""Concurrent invocations on one key, in separate processes: one version's rows, once."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest

from handlers.core.commit import (
    COMMITTED,
    DONE,
    PROP_OPERATION,
    PROP_SOURCE_KEY,
    SUPERSEDED,
    TRANSFORM,
    committed_sources,
)
from handlers.core.storage import LocalStorage, S3Storage, Storage
from handlers.core.table import load_table
from pipeline import quarantine as q
from tests.helpers import GOOD_RECORD, encode

KEY = "raw/dt=2026-01-05/batch.jsonl"
WRITERS = 8


def records(n: int, tag: str) -> tuple[bytes, set[str], set[str]]:
    """NDJSON of n records, every 10th breaking the contract; (bytes, valid ids, invalid ids)."""
    lines, valid, invalid = [], set(), set()
    for i in range(n):
        tx = f"{tag}-{i}"
        if i % 10 == 3:
            lines.append(encode({**GOOD_RECORD, "transaction_id": tx, "quantity": 0}))
            invalid.add(tx)
        else:
            lines.append(encode({**GOOD_RECORD, "transaction_id": tx}))
            valid.add(tx)
    return b"\n".join(lines) + b"\n", valid, invalid


def _open(lake: str) -> Storage:
    return S3Storage(lake.removeprefix("s3://")) if lake.startswith("s3://") else LocalStorage(lake)


def _transform(lake: str, start: float) -> str:
    """One invocation in its own process, all of them released at the same instant."""
    from handlers.core.transform import transform_object

    time.sleep(max(0.0, start - time.time()))
    result = transform_object(_open(lake), KEY, chunk_bytes=16 * 1024)
    return result.skipped or COMMITTED


def _slow_old_version(lake: str, started: str, go_on: str) -> dict[str, Any]:
    """Transforms the older, longer version; pauses after its first chunk until told."""
    from handlers.core.transform import transform_object

    def pause(_result: Any) -> None:
        if not Path(started).exists():
            Path(started).touch()
            deadline = time.time() + 60
            while not Path(go_on).exists() and time.time() < deadline:
                time.sleep(0.05)

    result = transform_object(_open(lake), KEY, chunk_bytes=8 * 1024, on_progress=pause)
    return {"skipped": result.skipped, "outputs": result.outputs}


def table_state(storage: Storage) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Rows of the current snapshot, the entries the tools show, and the key's commits."""
    table = load_table(storage)
    rows = table.scan().to_arrow().to_pylist()
    problems: list[q.Problem] = []
    entries = [i.entry for _f, i in q.select_entries(storage, q.Selection(), problems)]
    commits = sum(
        1
        for s in table.snapshots()
        if s.summary
        and s.summary[PROP_OPERATION] == TRANSFORM
        and s.summary[PROP_SOURCE_KEY] == KEY
    )
    return rows, [e for e in entries if e is not None], commits


def _race(lake: str) -> list[str]:
    spawn = multiprocessing.get_context("spawn")
    start = time.time() + 8  # every process has imported the pipeline by then
    with spawn.Pool(WRITERS) as pool:
        return pool.starmap(_transform, [(lake, start)] * WRITERS)


def _assert_one_copy(storage: Storage, valid: set[str], invalid: set[str], outcomes: list[str]):
    assert outcomes.count(COMMITTED) == 1, outcomes  # one commit; the others found it done
    assert set(outcomes) <= {COMMITTED, DONE}, outcomes
    rows, entries, commits = table_state(storage)
    assert commits == 1
    assert sorted(r["transaction_id"] for r in rows) == sorted(valid)
    assert sorted(e["record"]["transaction_id"] for e in entries) == sorted(invalid)


def test_eight_processes_on_one_key_of_a_local_lake(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "lake")
    data, valid, invalid = records(3000, "v1")
    storage.put_bytes(KEY, data)
    load_table(storage)  # the table exists before the race (as after `pulumi up`)
    _assert_one_copy(storage, valid, invalid, _race(str(storage.root)))


def test_eight_processes_on_one_key_of_a_bucket(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One SQL catalog file shared by the processes: its commits detect conflicts.
    monkeypatch.setenv("ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path / 'shared-catalog.db'}")
    storage = S3Storage(bucket)
    data, valid, invalid = records(3000, "v1")
    storage.put_bytes(KEY, data)
    load_table(storage)
    _assert_one_copy(storage, valid, invalid, _race(f"s3://{bucket}"))


def test_a_newer_shorter_version_wins_over_an_older_one_still_running(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "lake")
    old, _old_valid, _old_invalid = records(4000, "v1")
    new_lines = old.splitlines(keepends=True)[:300]  # v2: v1's first lines, as in the report
    new = b"".join(new_lines)
    _, valid, invalid = records(300, "v1")
    storage.put_bytes(KEY, old)
    load_table(storage)
    started, go_on = str(tmp_path / "started"), str(tmp_path / "go-on")
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(1) as pool:
        running = pool.apply_async(_slow_old_version, (str(storage.root), started, go_on))
        deadline = time.time() + 60
        while not os.path.exists(started) and time.time() < deadline:
            time.sleep(0.05)
        assert os.path.exists(started), "the old version's run never started"
        time.sleep(0.01)
        storage.put_bytes(KEY, new)  # v2 lands while v1 is half done…
        from handlers.core.transform import transform_object

        newer = transform_object(storage, KEY)  # …and is transformed and committed first
        assert not newer.skipped
        Path(go_on).touch()
        older = running.get(timeout=120)
    assert older["skipped"] == SUPERSEDED
    rows, entries, _commits = table_state(storage)
    assert sorted(r["transaction_id"] for r in rows) == sorted(valid)
    assert sorted(e["record"]["transaction_id"] for e in entries) == sorted(invalid)
    assert {r["source_version"] for r in rows} == {newer.source_version}
    # The loser removed what it wrote: no data file and no quarantine file of v1 remain.
    assert not [k for k in older["outputs"] if storage.exists(k)]
    table = load_table(storage)
    assert committed_sources(table)[KEY].version == newer.source_version
