"""Validate a chunk against the pandera contract: which row breaks which rule."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa
from pandera.engines import pandas_engine

from handlers.core.decode import Chunk
from handlers.core.instants import InstantCache
from handlers.core.seen import SeenIds
from schemas import DATAFRAME_CHECK_COLUMNS, input_arrow_schema
from schemas.transaction import CHECK_NOT_NULL, CHECK_UNIQUE, check_name

# Set to 0 to have pandera report every failure itself (`schema.validate(lazy=True)`):
# slower, never different (tests/property/test_validation_differential.py).
FAST_PATH_ENV = "VALIDATE_FAST_PATH"

# Row -> the (column, check) rules it breaks; rows breaking the same rules may share one.
Errors = dict[int, Sequence[tuple[str, str]]]


def fast_path_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the mask path is on: unless VALIDATE_FAST_PATH is 0, false, no or off."""
    env = os.environ if environ is None else environ
    return env.get(FAST_PATH_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def warm_up(schema: pandera.DataFrameSchema, fast: bool | None = None) -> None:
    """Run the chosen path once on no rows: its one-time setup, off a chunk's path."""
    frame = input_arrow_schema().empty_table().to_pandas(types_mapper=pd.ArrowDtype)
    if (fast_path_enabled() if fast is None else fast) and rule_failures(frame, schema) is not None:
        return
    pandera_failures(frame, schema)


def validate(
    chunk: Chunk,
    schema: pandera.DataFrameSchema,
    seen: SeenIds,
    *,
    id_hashes: np.ndarray | None = None,
    instants: InstantCache | None = None,
    fast: bool | None = None,
) -> Errors:
    """Row -> [(column, check)] for every row that breaks the contract.

    Decode-time type errors come first, then the model's rules in the schema's order
    (each column's `not_nullable` then its checks, then the frame-wide checks), then the
    file-wide uniqueness. pandera's `not_nullable` for a column that already has a type
    error is the same problem and is not repeated. `id_hashes` are `SeenIds.hashes` of
    every row's id, when the caller has them already; `instants` holds the chunk's
    timestamp column (and maybe its parse) so it is parsed only once. `fast` (default:
    `fast_path_enabled()`) runs the model's checks as masks; False has pandera report.
    """
    errors: Errors = {row: list(errs) for row, errs in chunk.decode_errors.items()}
    table = chunk.table
    if table.num_rows:
        frame = table.to_pandas(types_mapper=pd.ArrowDtype)
        if instants is None:
            instants = InstantCache()
            instants.hold(table.column("timestamp"))
        with instants.checking():
            use_masks = fast_path_enabled() if fast is None else fast
            failures = rule_failures(frame, schema) if use_masks else None
            if failures is None:
                failures = pandera_failures(frame, schema)
        _add_failures(failures, errors, schema)
        _check_unique(table, errors, seen, id_hashes)
    return {row: _dedupe(errs) for row, errs in errors.items() if errs}


# (column, check, rows that break it), one per rule that some row breaks.
Failures = list[tuple[str, str, np.ndarray]]


def rule_failures(frame: pd.DataFrame, schema: pandera.DataFrameSchema) -> Failures | None:
    """The rows each of the model's rules rejects, from its checks' own boolean results.

    Each check runs exactly as pandera runs it (`Check.__call__`: nulls dropped when the
    check ignores them, then the check function); what is skipped is pandera's report,
    whose cost per failing check per chunk dominated a faulty file. None when the frame
    is one this path does not cover (a missing column, a dtype the model does not
    declare, a check that raised, a result not aligned with the rows): then the caller
    asks pandera itself, which reports those cases as it always has.
    """
    failures: Failures = []
    rows = len(frame)
    try:
        for name, column in schema.columns.items():
            if name not in frame.columns:
                return None
            series = frame[name]
            if column.dtype is not None and not column.dtype.check(
                pandas_engine.Engine.dtype(series.dtype)
            ):
                return None
            nulls = series.isna()
            if not column.nullable:
                failures.append((name, CHECK_NOT_NULL, _failing(nulls, rows, True)))
            # What pandera hands a check that ignores nulls, made once per column
            # rather than once per check: the column without them (same labels).
            present = series[~nulls.to_numpy()] if nulls.any() else series
            for check in column.checks:
                output = check(present if check.ignore_na else series).check_output
                failures.append((name, check_name(check), _failing(output, rows)))
        for check in schema.checks:
            output = check(frame).check_output
            column = DATAFRAME_CHECK_COLUMNS.get(check_name(check), "")
            failures.append((column, check_name(check), _failing(output, rows)))
    except Exception:  # pandera reports a raising check its own way: let it
        return None
    return [failure for failure in failures if len(failure[2])]


class _NotCovered(Exception):
    """A check's result this path cannot turn into rows; pandera decides instead."""


def _failing(output: object, rows: int, flagged: bool = False) -> np.ndarray:
    """Positions of the rows a check's output rejects (`flagged`: True marks a failure)."""
    if not isinstance(output, pd.Series) or output.hasnans or not _boolean(output.dtype):
        raise _NotCovered
    values = output.to_numpy(dtype=bool)
    bad = values if flagged else ~values
    index = output.index
    if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
        return np.flatnonzero(bad)
    at = index.to_numpy()[bad]
    if at.dtype.kind not in "iu" or (len(at) and (at.min() < 0 or at.max() >= rows)):
        raise _NotCovered
    return at.astype(np.int64)


def _boolean(dtype: object) -> bool:
    if isinstance(dtype, pd.ArrowDtype):
        return pa.types.is_boolean(dtype.pyarrow_dtype)
    return dtype == np.dtype(bool) or isinstance(dtype, pd.BooleanDtype)


def pandera_failures(frame: pd.DataFrame, schema: pandera.DataFrameSchema) -> Failures:
    """The rows each rule rejects, as pandera's lazy validation reports them."""
    try:
        schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as e:
        cases = e.failure_cases
    else:
        return []
    cases = cases[cases["index"].notna()]
    found: dict[tuple[str, str], list[int]] = {}
    columns = cases["column"].astype(object).tolist()
    checks = cases["check"].astype(str).tolist()
    rows = cases["index"].astype("int64").tolist()
    for row, column, check in zip(rows, columns, checks, strict=True):
        found.setdefault((DATAFRAME_CHECK_COLUMNS.get(check, column), check), []).append(row)
    return [(column, check, np.array(at, np.int64)) for (column, check), at in found.items()]


def rule_order(schema: pandera.DataFrameSchema) -> dict[tuple[str, str], int]:
    """(column, check) -> its place in the schema: the order a row's errors are listed in."""
    rules: list[tuple[str, str]] = []
    for name, column in schema.columns.items():
        if not column.nullable:
            rules.append((name, CHECK_NOT_NULL))
        rules += [(name, check_name(check)) for check in column.checks]
    for check in schema.checks:
        rules.append((DATAFRAME_CHECK_COLUMNS.get(check_name(check), ""), check_name(check)))
    return {rule: n for n, rule in enumerate(rules)}


def _add_failures(failures: Failures, errors: Errors, schema: pandera.DataFrameSchema) -> None:
    """Each failing row's rules, in the schema's order, after its decode errors.

    Rows that break the same rules share one tuple of them: an all-bad chunk of a
    hundred thousand rows then holds a handful of tuples, not a list per row.
    """
    if not failures:
        return
    rank = rule_order(schema)
    ordered = sorted(failures, key=lambda f: rank.get((f[0], f[1]), len(rank)))
    rules = [(column, check) for column, check, _ in ordered]
    if len(rules) > 64:  # more rules than a bit mask holds: one row at a time
        for rule, (_, _, rows) in zip(rules, ordered, strict=True):
            for row in np.unique(rows).tolist():
                _extend(errors, row, (rule,))
        return
    size = 1 + max(int(rows.max()) for _, _, rows in ordered)
    codes = np.zeros(size, dtype=np.uint64)
    for bit, (_, _, rows) in enumerate(ordered):
        codes[rows] |= np.uint64(1 << bit)
    failing = np.flatnonzero(codes)
    kinds, which = np.unique(codes[failing], return_inverse=True)
    shared = [
        tuple(rule for bit, rule in enumerate(rules) if code >> bit & 1) for code in kinds.tolist()
    ]
    for row, kind in zip(failing.tolist(), which.tolist(), strict=True):
        _extend(errors, row, shared[kind])


def _extend(errors: Errors, row: int, rules: tuple[tuple[str, str], ...]) -> None:
    existing = errors.get(row)
    if not existing:
        errors[row] = rules
        return
    # A decode error means the column had no value: its `not_nullable` says nothing more.
    typed = {column for column, _ in existing}
    more = [r for r in rules if not (r[1] == CHECK_NOT_NULL and r[0] in typed)]
    errors[row] = [*existing, *more]


def _check_unique(
    table: pa.Table, errors: Errors, seen: SeenIds, id_hashes: np.ndarray | None = None
) -> None:
    # Only rows that are otherwise valid claim an id: the first good copy is kept.
    candidates = np.ones(table.num_rows, dtype=bool)
    if errors:
        candidates[[r for r, errs in errors.items() if errs]] = False
    rows = np.flatnonzero(candidates)
    if not len(rows):
        return
    if id_hashes is not None:
        hashes = id_hashes if len(rows) == table.num_rows else id_hashes[rows]
    else:
        ids = table.column("transaction_id")
        if len(rows) < table.num_rows:
            ids = ids.take(pa.array(rows))
        hashes = SeenIds.hashes(ids)
    duplicate = seen.claim(hashes)
    for row in rows[duplicate].tolist():
        errors[row] = (_UNIQUE,)  # only rows with no other error get here


_UNIQUE = ("transaction_id", CHECK_UNIQUE)


def _dedupe(errs: Sequence[tuple[str, str]]) -> Sequence[tuple[str, str]]:
    # Shared tuples hold each rule once; lists gathered per row may repeat one.
    return errs if isinstance(errs, tuple) or len(errs) == 1 else list(dict.fromkeys(errs))
