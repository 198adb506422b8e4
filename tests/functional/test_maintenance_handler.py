"""The maintenance Lambda on its EventBridge schedule event, against moto S3; and an
independent reader (plain pyiceberg + DuckDB, no project code) agreeing with `query`."""

from __future__ import annotations

import contextlib
import io
import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from handlers.core.errors import ConfigError
from handlers.core.maintain import MaintainSettings, maintain
from handlers.core.storage import S3Storage
from handlers.core.table import load_table
from pipeline.bench_iceberg import batch_rows
from tests.conftest import EVENTS_DIR

DAY = date(2026, 11, 25)


@pytest.fixture
def maintenance_env(bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "LAKE_URL": f"s3://{bucket}",
        "GLUE_DATABASE": "ecommerce_test",
        "ICEBERG_TABLE": "transactions",
        "ICEBERG_CATALOG_URI": f"sqlite:///{tmp_path / 'catalog.db'}",
        "TARGET_FILE_MB": "16",
        "SNAPSHOT_RETENTION_HOURS": "0.0002",  # 0.72 s
        "ORPHAN_MIN_AGE_HOURS": "1",
        "STACK": "test",
        "LOG_LEVEL": "INFO",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def rows_of(storage: S3Storage) -> list[dict[str, Any]]:
    table = load_table(storage)
    return sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["transaction_id"])


def test_scheduled_maintenance_compacts_expires_and_keeps_young_files(
    bucket: str, maintenance_env: dict[str, str]
) -> None:
    from handlers.maintenance import handler

    storage = S3Storage(bucket)
    table = load_table(storage)
    for d in range(2):
        for b in range(4):
            table.append(batch_rows(DAY + timedelta(days=d), b, 40))
    expected = rows_of(storage)
    data_before = {o.key for o in storage.list("processed/data/")}
    assert len(data_before) == 8

    time.sleep(1.0)  # the appends are now older than SNAPSHOT_RETENTION_HOURS
    event = json.loads((EVENTS_DIR / "eventbridge_schedule.json").read_text())
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        summary = handler(event, None)
    logged = json.loads(out.getvalue().splitlines()[-1])
    assert logged == json.loads(json.dumps(summary, default=str))
    assert summary["message"] == "maintained" and summary["stack"] == "test"
    assert (summary["files_before"], summary["files_after"], summary["commits"]) == (8, 2, 2)
    # The 8 appends are older than the retention (compaction commits may be too).
    assert summary["snapshots_before"] == 10
    assert 8 <= summary["snapshots_expired"] <= 9
    current = load_table(storage).metadata
    assert len(current.snapshots) == 10 - summary["snapshots_expired"]
    assert current.current_snapshot().summary["pipeline.operation"] == "compact"
    # The replaced files are unreferenced now, but younger than ORPHAN_MIN_AGE_HOURS.
    assert summary["orphans_removed"] == 0
    assert data_before <= {o.key for o in storage.list("processed/data/")}
    assert rows_of(storage) == expected

    # Two hours on, the same code removes them, and nothing the table needs.
    later = maintain(
        storage,
        MaintainSettings(snapshot_retention_hours=1, orphan_min_age_hours=1),
        now=datetime.now(UTC) + timedelta(hours=2),
    )
    assert set(later.orphans_removed) >= data_before
    table = load_table(storage)
    live = {t.file.file_path for t in table.scan().plan_files()}
    assert {f"s3://{bucket}/{o.key}" for o in storage.list("processed/data/")} == live
    assert rows_of(storage) == expected


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("LAKE_URL", "lake"),
        ("TARGET_FILE_MB", "0"),
        ("TARGET_FILE_MB", "1.5"),
        ("SNAPSHOT_RETENTION_HOURS", "-3"),
        ("ORPHAN_MIN_AGE_HOURS", "0.2"),
        ("ORPHAN_MIN_AGE_HOURS", "soon"),
        ("LOG_LEVEL", "LOUD"),
    ],
)
def test_bad_environment_is_a_config_error_naming_the_variable(
    maintenance_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, key: str, value: str
) -> None:
    from handlers.maintenance import MaintenanceConfig, handler

    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as caught:
        handler({}, None)
    assert key.lower() in caught.value.reason.lower()
    with pytest.raises(ConfigError):
        MaintenanceConfig.from_env()


def test_missing_glue_database_is_a_config_error(
    maintenance_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from handlers.maintenance import handler

    monkeypatch.delenv("GLUE_DATABASE")
    monkeypatch.delenv("ICEBERG_CATALOG_URI")
    with pytest.raises(ConfigError, match="GLUE_DATABASE"):
        handler({}, None)


def test_an_independent_reader_sees_what_query_sees(tmp_path: Path) -> None:
    """Plain pyiceberg and DuckDB, configured only from the documented layout."""
    import duckdb
    from pyiceberg.catalog.sql import SqlCatalog

    from handlers.core.storage import LocalStorage
    from pipeline.cli import main

    lake = tmp_path / "lake"
    table = load_table(LocalStorage(lake))
    for b in range(5):
        table.append(batch_rows(DAY, b, 30))
    maintain(LocalStorage(lake), MaintainSettings())  # some history: appends, then a replace
    table.append(batch_rows(DAY + timedelta(days=1), 0, 30))

    catalog = SqlCatalog(
        "local", uri=f"sqlite:///{lake}/_catalog/catalog.db", warehouse=lake.as_uri()
    )
    plain = catalog.load_table("ecommerce.transactions")
    files = [t.file.file_path.removeprefix("file://") for t in plain.scan().plan_files()]
    sql = (
        "SELECT day, category, COUNT(*) AS n, SUM(total_amount) AS revenue "
        "FROM transactions GROUP BY ALL ORDER BY ALL"
    )
    con = duckdb.connect()
    con.read_parquet(files).create_view("transactions")
    independent = con.execute(sql).fetchall()
    by_pyiceberg = duckdb.connect()
    by_pyiceberg.register("transactions", plain.scan().to_arrow())
    assert by_pyiceberg.execute(sql).fetchall() == independent

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["query", "--lake", str(lake), sql]) == 0
    from pipeline.query import format_table

    assert out.getvalue().strip() == format_table(["day", "category", "n", "revenue"], independent)
    assert sum(r[2] for r in independent) == 180


def test_a_table_that_lives_in_another_bucket_is_refused_before_anything_is_deleted(
    bucket: str, maintenance_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    from handlers.maintenance import handler

    table = load_table(S3Storage(bucket))
    table.append(batch_rows(DAY, 0, 10))
    other = f"{bucket}-other"
    boto3.client("s3").create_bucket(Bucket=other)
    S3Storage(other).put_bytes("processed/data/keep.parquet", b"not this table's")
    monkeypatch.setenv("LAKE_URL", f"s3://{other}")  # same catalog, wrong bucket
    with pytest.raises(ConfigError, match=f"lives at s3://{bucket}/processed"):
        handler({}, None)
    assert S3Storage(other).exists("processed/data/keep.parquet")
