"""Rows to partitions: the days of the valid rows, each with the mask of its rows."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from handlers.core.rows import day_masks, partitions


def _instants(*texts: str | None) -> pa.Array:
    values = [None if t is None else datetime.fromisoformat(t).astimezone(UTC) for t in texts]
    return pa.array(values, pa.timestamp("us", tz="UTC"))


def test_one_day_all_valid_needs_no_mask() -> None:
    instants = _instants("2026-01-15T00:00:00+00:00", "2026-01-15T23:59:59.999999+00:00")
    assert day_masks(instants, np.ones(2, dtype=bool)) == [((2026, 1, 15), None)]


def test_each_day_gets_the_valid_rows_of_that_day_in_utc() -> None:
    instants = _instants(
        "2026-01-15T23:30:00-01:00",  # 2026-01-16 00:30 UTC
        "2026-01-15T12:00:00+00:00",
        None,  # a row that failed its checks: no instant
        "1999-12-31T23:59:59+00:00",
        "2026-01-16T08:00:00+00:00",
    )
    valid = np.array([True, True, False, False, True])
    got = day_masks(instants, valid)
    assert [day for day, _ in got] == [(2026, 1, 15), (2026, 1, 16)]
    masks = {day: mask.tolist() for day, mask in got}
    assert masks[(2026, 1, 15)] == [False, True, False, False, False]
    assert masks[(2026, 1, 16)] == [True, False, False, False, True]


def test_one_day_with_a_bad_row_is_masked() -> None:
    instants = _instants("2026-01-15T01:00:00+00:00", "2026-01-15T02:00:00+00:00")
    [(day, mask)] = day_masks(instants, np.array([True, False]))
    assert day == (2026, 1, 15) and mask is not None and mask.tolist() == [True, False]


def test_no_valid_row_no_day() -> None:
    assert day_masks(_instants("2026-01-15T01:00:00+00:00"), np.zeros(1, dtype=bool)) == []


def test_partitions_split_processed_rows_by_utc_day_in_row_order() -> None:
    instants = _instants(
        "2026-01-16T08:00:00+00:00", "2026-01-15T12:00:00+00:00", "2026-01-16T09:00:00+00:00"
    )
    rows = pa.table({"timestamp": instants, "n": [0, 1, 2]})
    got = [(day, part.column("n").to_pylist()) for day, part in partitions(rows)]
    assert got == [((2026, 1, 15), [1]), ((2026, 1, 16), [0, 2])]
    [(day, whole)] = partitions(rows.slice(1, 1))
    assert day == (2026, 1, 15) and whole.num_rows == 1
