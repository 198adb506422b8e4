"""`maintain` on a local lake: compaction keeps every row, readers never see a change,
expiry and orphan removal never touch what the current snapshot needs."""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from handlers.core.maintain import MaintainSettings, maintain
from handlers.core.storage import LocalStorage
from handlers.core.table import LegacyLayoutError, load_table
from pipeline.bench_iceberg import batch_rows
from pipeline.cli import main
from pipeline.query import current_data_files, run_sql

FIRST_DAY = date(2026, 3, 1)
CHECK = (
    "SELECT year, month, day, COUNT(*) AS n, SUM(total_amount) AS revenue, "
    "COUNT(DISTINCT transaction_id) AS ids FROM transactions WHERE year = 2026 AND month = 3 "
    "GROUP BY ALL ORDER BY ALL"
)


def fill(lake: Path, *, days: int, files_per_day: int, rows: int = 50) -> LocalStorage:
    """A table of many small commits (one data file each), as 5-minute batches make it."""
    storage = LocalStorage(lake)
    table = load_table(storage)
    for d in range(days):
        for b in range(files_per_day):
            table.append(batch_rows(FIRST_DAY + timedelta(days=d), b, rows))
    return storage


def all_rows(storage: LocalStorage) -> list[dict[str, Any]]:
    table = load_table(storage)
    return sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["transaction_id"])


def files_per_partition(lake: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in current_data_files(lake):
        partition = Path(path).parent.relative_to(lake / "processed" / "data").as_posix()
        counts[partition] = counts.get(partition, 0) + 1
    return counts


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def age(path: Path, hours: float) -> None:
    stamp = time.time() - hours * 3600
    os.utime(path, (stamp, stamp))


def test_compaction_keeps_exactly_the_same_rows_and_reaches_the_target(tmp_path: Path) -> None:
    storage = fill(tmp_path / "lake", days=3, files_per_day=12)
    before = all_rows(storage)
    assert files_per_partition(storage.root) == {
        f"year=2026/month=3/day={d}": 12 for d in (1, 2, 3)
    }
    result = maintain(storage, MaintainSettings(target_file_mb=8))
    assert all_rows(storage) == before  # every value of every row, decimals and instants
    assert files_per_partition(storage.root) == {f"year=2026/month=3/day={d}": 1 for d in (1, 2, 3)}
    assert (result.files_before, result.files_after, result.commits) == (36, 3, 3)
    assert [p.rows for p in result.partitions] == [600, 600, 600]
    # Rewritten files are zstd Parquet with the table's field ids, and their stats are right.
    import pyarrow.parquet as pq

    table = load_table(storage)
    for task in table.scan().plan_files():
        meta = pq.ParquetFile(task.file.file_path.removeprefix("file://")).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
        assert task.file.record_count == meta.num_rows == 600
    assert table.current_snapshot().summary["pipeline.operation"] == "compact"
    # A second run has nothing left to merge.
    again = maintain(storage, MaintainSettings(target_file_mb=8))
    assert again.partitions == [] and again.commits == 0


def test_a_small_target_gives_several_files_per_partition(tmp_path: Path) -> None:
    storage = fill(tmp_path / "lake", days=1, files_per_day=10, rows=2000)
    size = sum(Path(p).stat().st_size for p in current_data_files(storage.root))
    target_mb = max(1, size // (3 * 1024 * 1024))
    before = all_rows(storage)
    maintain(storage, MaintainSettings(target_file_mb=int(target_mb)))
    assert all_rows(storage) == before
    assert 1 <= len(current_data_files(storage.root)) < 10


def test_readers_see_identical_results_while_maintain_compacts(tmp_path: Path) -> None:
    storage = fill(tmp_path / "lake", days=6, files_per_day=10)
    expected = run_sql(storage.root, CHECK)
    seen: list[Any] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                seen.append(run_sql(storage.root, CHECK))
            except BaseException as e:
                errors.append(e)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        result = maintain(storage, MaintainSettings(), on_progress=lambda _m: time.sleep(0.05))
    finally:
        done.set()
        thread.join()
    assert not errors, errors
    assert result.commits == 6  # one atomic replace per partition: readers saw mixtures too
    assert len(seen) >= 3
    assert all(s == expected for s in seen)
    assert run_sql(storage.root, CHECK) == expected


def test_a_query_planned_before_compaction_still_reads_its_snapshot(tmp_path: Path) -> None:
    storage = fill(tmp_path / "lake", days=2, files_per_day=6)
    planned = current_data_files(storage.root)
    expected = run_sql(storage.root, CHECK)
    maintain(storage, MaintainSettings())
    import duckdb

    con = duckdb.connect()
    con.read_parquet(planned).create_view("transactions")
    assert con.execute(CHECK).fetchall() == expected[1]


def test_expiry_keeps_the_current_snapshot_and_orphans_respect_age_and_references(
    tmp_path: Path,
) -> None:
    storage = fill(tmp_path / "lake", days=2, files_per_day=5)
    lake = storage.root
    expected = all_rows(storage)
    maintain(storage, MaintainSettings())
    current = set(current_data_files(lake))
    replaced = {
        str(p) for p in (lake / "processed" / "data").rglob("*.parquet") if str(p) not in current
    }
    assert len(replaced) == 10
    # Everything is "old" except a file a writer is about to commit right now.
    for path in (lake / "processed").rglob("*"):
        if path.is_file():
            age(path, 5)
    in_flight = lake / "processed" / "data" / "year=2026" / "month=3" / "day=1" / "inflight.parquet"
    in_flight.write_bytes(b"PAR1 not committed yet")
    stray = lake / "processed" / "metadata" / "stray-m0.avro"
    stray.write_bytes(b"old and unreferenced")
    age(stray, 5)

    # With a long retention nothing expires, and files the kept snapshots need stay.
    kept = maintain(storage, MaintainSettings(snapshot_retention_hours=24, orphan_min_age_hours=1))
    assert kept.snapshots_expired == 0
    assert kept.orphans_removed == ["processed/metadata/stray-m0.avro"]
    assert all(Path(p).exists() for p in current | replaced)

    later = datetime.now(UTC) + timedelta(hours=2)
    age(in_flight, -1.9)  # still only minutes old as seen from `later`
    done = maintain(
        storage, MaintainSettings(snapshot_retention_hours=1, orphan_min_age_hours=1), now=later
    )
    table = load_table(storage)
    assert len(table.metadata.snapshots) == 1  # only the current one is left
    assert done.snapshots_expired == 11  # 10 appends and 2 compactions
    removed = {str(lake / k) for k in done.orphans_removed}
    assert replaced <= removed  # the small files the compaction replaced
    assert not removed & current
    assert all(Path(p).exists() for p in current)
    assert in_flight.exists()  # younger than the minimum age
    assert Path(table.metadata_location.removeprefix("file://")).exists()
    assert all_rows(storage) == expected


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    storage = fill(tmp_path / "lake", days=1, files_per_day=4)
    before = sorted(p for p in (storage.root / "processed").rglob("*") if p.is_file())
    code, out, _err = run_cli("maintain", "--lake", str(storage.root), "--dry-run", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["dry_run"] is True
    assert (report["files_before"], report["files_after"]) == (4, 1)
    assert sorted(p for p in (storage.root / "processed").rglob("*") if p.is_file()) == before


def test_cli_maintain_reports_and_reads_back(tmp_path: Path) -> None:
    storage = fill(tmp_path / "lake", days=2, files_per_day=3)
    expected = run_sql(storage.root, CHECK)
    code, out, err = run_cli("maintain", "--lake", str(storage.root))
    assert code == 0, err
    assert "compaction: 2 partition(s) go from 6 to 2 data files" in out
    assert "year=2026/month=3/day=1" in out
    assert "[1/2]" in err  # progress
    assert run_sql(storage.root, CHECK) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target-file-mb", "0"], "--target-file-mb: must be at least 1"),
        (["--target-file-mb", "-5"], "--target-file-mb: must be at least 1"),
        (["--target-file-mb", "lots"], "expected a whole number, got 'lots'"),
        (["--target-file-mb", "9000"], "target_file_mb: must be 1..4096"),
        (["--snapshot-retention-hours", "0"], "--snapshot-retention-hours: must be at least"),
        (["--orphan-min-age-hours", "0.1"], "--orphan-min-age-hours: must be at least 1"),
        (["--orphan-min-age-hours", "nan"], "--orphan-min-age-hours: must be at least 1"),
        (["--lake", "/no/such/lake"], "no lake at /no/such/lake"),
        (["--bucket", "a/b"], "expected a bucket name"),
    ],
)
def test_bad_input_to_maintain_exits_2_with_a_clear_error(
    tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "lake").mkdir()
    where = [] if {"--lake", "--bucket"} & set(args) else ["--lake", str(tmp_path / "lake")]
    argv = ["maintain", *where, *args]
    with pytest.raises(SystemExit) as caught:
        raise SystemExit(main(argv))
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("legacy", "named"),
    [
        ("processed/year=2026/month=1/day=2/part-0.parquet", "processed/year="),
        ("_state/manifests/raw/a.json", "_state/manifests/"),
    ],
)
def test_a_pre_iceberg_lake_gets_told_what_to_do(tmp_path: Path, legacy: str, named: str) -> None:
    lake = tmp_path / "lake"
    (lake / legacy).parent.mkdir(parents=True)
    (lake / legacy).write_bytes(b"old")
    for command in (["query", "SELECT COUNT(*) FROM transactions"], ["maintain"]):
        code, _out, err = run_cli(*command, "--lake", str(lake))
        assert code == 1
        assert err.startswith(f"error: {lake} holds {named}")
        assert f"mv {lake}/processed {lake}/processed.old" in err
        assert "or start a new lake" in err
    with pytest.raises(LegacyLayoutError):
        load_table(LocalStorage(lake))


def test_an_empty_table_is_an_empty_view_with_the_columns(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    lake.mkdir()
    headers, rows = run_sql(lake, "SELECT * FROM transactions")
    from schemas.iceberg import iceberg_arrow_schema

    assert rows == [] and headers == iceberg_arrow_schema().names
    load_table(LocalStorage(lake))  # a table with no snapshot yet
    assert run_sql(lake, CHECK) == (["year", "month", "day", "n", "revenue", "ids"], [])


def test_bench_sees_what_a_transform_committed(tmp_path: Path) -> None:
    from pipeline.bench_iceberg import committed_rows

    assert committed_rows(tmp_path / "nothing") is None  # no Iceberg table: another layout
    storage = fill(tmp_path / "lake", days=2, files_per_day=3)
    assert committed_rows(storage.root) == 300


def _interfere_once(monkeypatch: pytest.MonkeyPatch, action: Any) -> None:
    """Run `action` (another writer's commit) while maintain rewrites its first group."""
    import handlers.core.maintain as module

    rewrite = module._rewrite
    calls = {"n": 0}

    def rewrite_then_interfere(table: Any, files: Any) -> Any:
        merged = rewrite(table, files)
        calls["n"] += 1
        if calls["n"] == 1:
            action()
        return merged

    monkeypatch.setattr(module, "_rewrite", rewrite_then_interfere)


def test_a_concurrent_append_to_the_partition_makes_compaction_replan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = fill(tmp_path / "lake", days=1, files_per_day=4)
    late = batch_rows(FIRST_DAY, 99, 50)
    _interfere_once(monkeypatch, lambda: load_table(storage).append(late))
    before = all_rows(storage)
    result = maintain(storage, MaintainSettings())
    assert result.conflicts == 1 and result.commits == 1
    after = all_rows(storage)
    assert len(after) == len(before) + 50  # the concurrent rows are kept, none twice
    assert after == sorted(before + late.to_pylist(), key=lambda r: r["transaction_id"])
    assert len(current_data_files(storage.root)) == 1  # re-planned with the new file
    # The merged file of the refused attempt was deleted, not left for orphan removal.
    on_disk = list((storage.root / "processed" / "data").rglob("*.parquet"))
    assert len(on_disk) == 4 + 1 + 1


def test_rows_a_concurrent_writer_removed_are_never_brought_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyiceberg.expressions import EqualTo

    storage = fill(tmp_path / "lake", days=1, files_per_day=4)
    gone = f"raw/{FIRST_DAY.isoformat()}/batch-002-0.json"
    # The transformer replacing a key's rows deletes that key's data file.
    _interfere_once(monkeypatch, lambda: load_table(storage).delete(EqualTo("source_key", gone)))
    expected = [r for r in all_rows(storage) if r["source_key"] != gone]
    result = maintain(storage, MaintainSettings())
    assert result.conflicts == 1
    assert all_rows(storage) == expected
    assert len(current_data_files(storage.root)) == 1


def test_the_bench_small_file_item_runs_small(tmp_path: Path) -> None:
    from pipeline.bench_iceberg import format_small_files, small_files

    figures = small_files(tmp_path, days=2, batches=4, rows=20, repeat=1, say=lambda _m: None)
    assert (figures.files_before, figures.files_after, figures.files_one_per_day) == (8, 2, 2)
    assert figures.same_result
    assert "8 before maintain, 2 after" in format_small_files(figures.to_dict())
