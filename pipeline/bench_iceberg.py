"""Iceberg items of `make bench`: small-file queries before and after `maintain`."""

from __future__ import annotations

import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

BATCHES_PER_DAY = 288  # one every 5 minutes
CATEGORIES = ("books", "electronics", "garden", "grocery", "toys")
GROUP_BY = (
    "SELECT year, month, day, category, COUNT(*) AS n, SUM(total_amount) AS revenue "
    "FROM transactions GROUP BY ALL ORDER BY ALL"
)
TARGET_COMPACTED_RATIO = 1.5


def committed_rows(lake: Path) -> int | None:
    """Rows in the lake table's current snapshot; None when the lake has no Iceberg table
    (the transformer under test wrote another layout)."""
    from handlers.core.storage import LocalStorage
    from handlers.core.table import CATALOG_DB, load_table

    if not (lake / CATALOG_DB).is_file():
        return None
    snapshot = load_table(LocalStorage(lake), create=False).current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return 0
    return int(snapshot.summary["total-records"] or 0)


def batch_rows(day: date, batch: int, rows: int, *, seed: int = 0) -> pa.Table:
    """`rows` valid rows of the 5-minute batch number `batch` of `day`, in the table's schema.

    Deterministic in (day, batch, seed); row values vary so files do not compress to nothing.
    """
    from schemas.iceberg import iceberg_arrow_schema

    rng = random.Random(f"{day.isoformat()}/{batch}/{seed}")
    start = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(minutes=5 * batch)
    key = f"raw/{day.isoformat()}/batch-{batch:03d}-{seed}.json"
    prices = [Decimal(rng.randrange(100, 50_000)) / 100 for _ in range(rows)]
    quantities = [rng.randrange(1, 10) for _ in range(rows)]
    stamps = [start + timedelta(seconds=rng.randrange(300)) for _ in range(rows)]
    columns: dict[str, list[Any]] = {
        "transaction_id": [f"t-{day:%Y%m%d}-{batch:03d}-{seed}-{i:06d}" for i in range(rows)],
        "timestamp": stamps,
        "customer_id": [f"c-{rng.randrange(100_000):06d}" for _ in range(rows)],
        "product_id": [f"p-{rng.randrange(5_000):05d}" for _ in range(rows)],
        "product_name": [f"product {rng.randrange(5_000)}" for _ in range(rows)],
        "category": [rng.choice(CATEGORIES) for _ in range(rows)],
        "quantity": quantities,
        "price": prices,
        "total_amount": [p * q for p, q in zip(prices, quantities, strict=True)],
        "hour": [s.hour for s in stamps],
        "day_of_week": [s.weekday() for s in stamps],
        "source_key": [key] * rows,
        "ingested_at": [start + timedelta(minutes=5)] * rows,
        "year": [day.year] * rows,
        "month": [day.month] * rows,
        "day": [day.day] * rows,
    }
    schema = iceberg_arrow_schema()
    for name in schema.names:
        # Columns added to the contract later (lineage) stay null here.
        if name not in columns:
            columns[name] = [None] * rows
    return pa.Table.from_pydict(columns, schema=schema)


@dataclass
class SmallFilesFigures:
    """The small-file item of `make bench`."""

    days: int
    batches_per_day: int
    rows_per_batch: int
    build_seconds: float
    maintain_seconds: float
    files_before: int
    files_after: int
    files_one_per_day: int
    query_small_files_s: float
    query_compacted_s: float
    query_one_file_per_day_s: float
    compacted_ratio: float
    small_files_ratio: float
    same_result: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _best_of(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - t)
    return min(times), result


def _query(files: list[str]) -> Callable[[], Any]:
    import duckdb

    def run() -> Any:
        con = duckdb.connect()
        con.read_parquet(files, hive_partitioning=False).create_view("transactions")
        return con.execute(GROUP_BY).fetchall()

    return run


def _fill(
    lake: Path, days: int, batches: int, rows: int, say: Callable[[str], None]
) -> list[pa.Table]:
    """The small-file table: one data file per 5-minute batch; returns each day's rows."""
    from handlers.core.maintain import write_data_files
    from handlers.core.storage import LocalStorage
    from handlers.core.table import load_table

    shutil.rmtree(lake, ignore_errors=True)
    table = load_table(LocalStorage(lake))
    first = date(2026, 1, 1)
    per_day: list[pa.Table] = []
    for d in range(days):
        day = first + timedelta(days=d)
        parts = [batch_rows(day, b, rows) for b in range(batches)]
        # One data file per 5-minute batch, as the transformer writes them; committed once
        # per day (2,880 single commits take pyiceberg ~1 h here): the files are the same.
        files = write_data_files(table, parts, (day.year, day.month, day.day))
        with table.transaction() as txn, txn.update_snapshot().fast_append() as append:
            for data_file in files:
                append.append_data_file(data_file)
        per_day.append(pa.concat_tables(parts))
        say(f"  day {d + 1}/{days}: {batches} files of {rows:,} rows")
    return per_day


def _one_file_per_day(folder: Path, per_day: list[pa.Table]) -> list[str]:
    """The same rows as plain zstd Parquet, one file per day: the baseline."""
    import pyarrow.parquet as pq

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    paths = []
    for d, rows_of_day in enumerate(per_day):
        path = folder / f"day-{d:02d}.parquet"
        pq.write_table(rows_of_day, path, compression="zstd")
        paths.append(str(path))
    return paths


def small_files(
    workdir: Path,
    *,
    days: int = 10,
    batches: int = BATCHES_PER_DAY,
    rows: int = 1000,
    repeat: int = 5,
    say: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
) -> SmallFilesFigures:
    """Write `days` x `batches` data files of `rows` rows, then `maintain`; time the same
    DuckDB group-by over the snapshot's files before and after, and over one plain file per
    day (the same rows)."""
    from handlers.core.maintain import MaintainSettings, maintain
    from handlers.core.storage import LocalStorage
    from pipeline.query import current_data_files

    lake, plain = workdir / "small-files-lake", workdir / "one-file-per-day"
    started = time.perf_counter()
    per_day = _fill(lake, days, batches, rows, say)
    build = time.perf_counter() - started
    plain_files = _one_file_per_day(plain, per_day)
    before_files = current_data_files(lake)
    t = time.perf_counter()
    done = maintain(LocalStorage(lake), MaintainSettings())
    maintain_s = time.perf_counter() - t
    say(f"  maintain: {done.files_before} -> {done.files_after} files in {maintain_s:.1f} s")
    after_files = current_data_files(lake)
    # Best of `repeat` each, measured back to back in this run.
    small_s, small_rows = _best_of(_query(before_files), repeat)
    compacted_s, compacted_rows = _best_of(_query(after_files), repeat)
    plain_s, plain_rows = _best_of(_query(plain_files), repeat)
    shutil.rmtree(lake, ignore_errors=True)
    shutil.rmtree(plain, ignore_errors=True)
    return SmallFilesFigures(
        days=days,
        batches_per_day=batches,
        rows_per_batch=rows,
        build_seconds=round(build, 2),
        maintain_seconds=round(maintain_s, 2),
        files_before=len(before_files),
        files_after=len(after_files),
        files_one_per_day=len(plain_files),
        query_small_files_s=round(small_s, 4),
        query_compacted_s=round(compacted_s, 4),
        query_one_file_per_day_s=round(plain_s, 4),
        compacted_ratio=round(compacted_s / plain_s, 3),
        small_files_ratio=round(small_s / plain_s, 3),
        same_result=small_rows == compacted_rows == plain_rows,
    )


def format_small_files(f: dict[str, Any]) -> str:
    """The small-file item as printed by `make bench`."""
    return "\n".join(
        [
            f"Small files ({f['days']} days x {f['batches_per_day']} five-minute files of "
            f"{f['rows_per_batch']:,} rows; built in {f['build_seconds']:.0f} s, "
            f"maintain {f['maintain_seconds']:.1f} s):",
            f"  data files: {f['files_before']:,} before maintain, {f['files_after']:,} after, "
            f"{f['files_one_per_day']} as one file per day",
            f"  DuckDB group-by: {f['query_small_files_s']:.3f} s on small files "
            f"({f['small_files_ratio']:.2f}x), {f['query_compacted_s']:.3f} s after maintain "
            f"({f['compacted_ratio']:.2f}x), {f['query_one_file_per_day_s']:.3f} s one file "
            f"per day; same result: {f['same_result']}",
        ]
    )
