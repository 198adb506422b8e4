"""Table rows from validated input: derived and lineage columns, split by partition day."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas import output_columns, parse_instants


def to_processed(
    table: pa.Table,
    source_key: str,
    ingested_at: datetime,
    *,
    instants: pa.Array | None = None,
    source_version: str = "",
    entry_ids: list[str] | None = None,
) -> pa.Table:
    """Valid input rows to the table's columns (contract order), derived and lineage added.

    `instants` is the parsed `timestamp` column when the caller already has it;
    `entry_ids` are the quarantine entries replayed rows come from.
    """
    if instants is None:
        instants = parse_instants(table.column("timestamp"))
    n = table.num_rows
    columns: dict[str, pa.Array] = {name: table.column(name) for name in table.column_names}
    columns["timestamp"] = instants
    # The same fields from the zone-less view of these UTC instants: Arrow skips its
    # time-zone lookups, and UTC fields are what the partitions are named after.
    utc = instants.cast(pa.timestamp("us"))
    columns["hour"] = pc.hour(utc).cast(pa.int8())
    columns["day_of_week"] = pc.day_of_week(utc).cast(pa.int8())
    columns["source_key"] = pa.repeat(pa.scalar(source_key, pa.string()), n)
    columns["ingested_at"] = pa.array(
        np.full(n, np.datetime64(ingested_at.replace(tzinfo=None), "us")),
        pa.timestamp("us", tz="UTC"),
    )
    columns["year"] = pc.year(utc).cast(pa.int16())
    columns["month"] = pc.month(utc).cast(pa.int8())
    columns["day"] = pc.day(utc).cast(pa.int8())
    columns["source_version"] = pa.repeat(pa.scalar(source_version, pa.string()), n)
    columns["replayed_entry_id"] = (
        pa.nulls(n, pa.string()) if entry_ids is None else pa.array(entry_ids, pa.string())
    )
    return pa.table({c.name: columns[c.name] for c in output_columns()})


def partitions(rows: pa.Table) -> Iterator[tuple[tuple[int, int, int], pa.Table]]:
    """Split table rows by UTC day (the partition), in row order within each day."""
    every = np.ones(rows.num_rows, dtype=bool)
    for day, mask in day_masks(rows.column("timestamp"), every):
        # One day (the usual case for a batch): the rows as they are, no filtered copy.
        yield day, rows if mask is None else rows.filter(pa.array(mask))


_US_PER_DAY = 86_400_000_000


def day_masks(
    instants: pa.Array | pa.ChunkedArray, valid: np.ndarray
) -> list[tuple[tuple[int, int, int], np.ndarray | None]]:
    """The UTC days (partitions) of the rows `valid` marks, each with the mask of its rows.

    The mask is None when it would select every row: one day, all rows valid (the usual
    batch), so the caller writes the rows as they are. Filtering each day straight from
    the decoded rows, rather than the valid rows first and then each day of those,
    copies a chunk with bad records once instead of twice.
    """
    micros = pc.fill_null(instants.cast(pa.timestamp("us")).cast(pa.int64()), 0)
    days = np.floor_divide(micros.to_numpy(zero_copy_only=False), _US_PER_DAY)
    present = np.unique(days[valid])
    out: list[tuple[tuple[int, int, int], np.ndarray | None]] = []
    for number in present.tolist():
        date = (datetime(1970, 1, 1) + timedelta(days=number)).date()
        mask = None if len(present) == 1 and valid.all() else valid & (days == number)
        out.append(((date.year, date.month, date.day), mask))
    return out
