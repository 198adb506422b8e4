"""The mask path of validation against pandera's own report.

`validate(..., fast=True)` runs the pandera model's checks and reads their boolean
results; `fast=False` has pandera validate lazily and report its failure cases. For any
typed rows (nulls, bounds, blanks, bad instants, wrong totals, unknown categories,
decode errors), both must name the same rows, the same rules, in the same order.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.core import validation
from handlers.core.decode import Chunk
from handlers.core.seen import SeenIds
from handlers.core.validation import FAST_PATH_ENV, fast_path_enabled, rule_failures, validate
from schemas import CATEGORIES, contract, input_arrow_schema

REFERENCE_TIME = datetime(2026, 1, 10, 12, tzinfo=UTC)

_TEXT = st.one_of(
    st.none(),
    st.sampled_from(["t-1", "C1", "P-0001", "", " ", "\u00a0", "\u3000x", "x" * 257, "x" * 256]),
    st.text(max_size=8),
)
_INSTANTS = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "2026-01-10T11:00:00Z",
            "2026-01-10T12:05:00Z",
            "2026-01-10T12:05:00.000001Z",
            "2026-01-10T12:10:00+00:00",
            "1999-12-31T23:59:59Z",
            "2000-01-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-01-10",
            "2026-01-10 10:00",
            "2026-01-10T10:00:00+05:30",
            "yesterday",
            "",
        ]
    ),
)
_QUANTITY = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from([10_000, 10_001, 2**62]))
_PRICE = st.one_of(
    st.none(),
    st.sampled_from(
        [Decimal("0"), Decimal("-1.00"), Decimal("0.01"), Decimal("79.99"), Decimal("1000000")]
    ),
    st.sampled_from([Decimal("1000000.01"), Decimal("99999999.99")]),
)
_TOTAL = st.one_of(
    st.none(),
    st.sampled_from([Decimal("0"), Decimal("-5.00"), Decimal("79.99"), Decimal("159.98")]),
)
_CATEGORY = st.one_of(st.none(), st.sampled_from([*sorted(CATEGORIES)[:3], "Nope", ""]))


@st.composite
def _rows(draw: Any) -> list[dict[str, Any]]:
    rows = []
    for _ in range(draw(st.integers(0, 40))):
        rows.append(
            {
                "transaction_id": draw(st.one_of(_TEXT, st.sampled_from(["dup", "dup"]))),
                "timestamp": draw(_INSTANTS),
                "customer_id": draw(_TEXT),
                "product_id": draw(_TEXT),
                "product_name": draw(_TEXT),
                "category": draw(_CATEGORY),
                "quantity": draw(_QUANTITY),
                "price": draw(_PRICE),
                "total_amount": draw(_TOTAL),
            }
        )
    return rows


def _chunk(rows: list[dict[str, Any]], decode_errors: dict[int, list[tuple[str, str]]]) -> Chunk:
    table = pa.Table.from_pylist(rows, schema=input_arrow_schema())
    n = len(rows)
    return Chunk(0, table, list(range(1, n + 1)), list(range(n)), [b"{}"] * n, decode_errors)


def _both(chunk: Chunk) -> tuple[dict[int, Any], dict[int, Any]]:
    schema = contract(REFERENCE_TIME)
    masks = validate(chunk, schema, SeenIds(), fast=True)
    pandera = validate(chunk, schema, SeenIds(), fast=False)
    return masks, pandera


@given(rows=_rows(), data=st.data())
def test_masks_name_exactly_what_pandera_reports(rows: list[dict[str, Any]], data: Any) -> None:
    # Some rows carry a decode-time type error, as the decoder leaves them: the value null.
    errors: dict[int, list[tuple[str, str]]] = {}
    for row in data.draw(st.sets(st.integers(0, max(0, len(rows) - 1)), max_size=3)):
        if row < len(rows):
            column = data.draw(st.sampled_from(["quantity", "price", "customer_id"]))
            rows[row][column] = None
            errors[row] = [(column, "type(string)")]
    masks, pandera = _both(_chunk(rows, errors))
    assert masks == pandera


@given(rows=_rows())
def test_the_mask_path_covers_typed_frames(rows: list[dict[str, Any]]) -> None:
    """The fast path must not quietly hand every chunk back to pandera."""
    table = pa.Table.from_pylist(rows, schema=input_arrow_schema())
    frame = table.to_pandas(types_mapper=pd.ArrowDtype)
    assert rule_failures(frame, contract(REFERENCE_TIME)) is not None


_GOOD = {
    "transaction_id": "t-1",
    "timestamp": "2026-01-10T11:00:00Z",
    "customer_id": "C1",
    "product_id": "P1",
    "product_name": "Widget",
    "category": sorted(CATEGORIES)[0],
    "quantity": 2,
    "price": Decimal("1.00"),
    "total_amount": Decimal("2.00"),
}
_BAD_VALUES = {
    **{text: [None, "", " ", "x" * 257] for text in ("transaction_id", "customer_id")},
    **{text: [None, "", " ", "x" * 257] for text in ("product_id", "product_name")},
    "timestamp": [None, "nope", "1999-01-01T00:00:00Z", "2030-01-01T00:00:00Z"],
    "category": [None, "Nope"],
    "quantity": [None, 0, 10_001],
    "price": [None, Decimal("0"), Decimal("1000000.01")],
    "total_amount": [None, Decimal("0"), Decimal("3.00")],
}


def test_every_rule_is_exercised_by_the_comparison() -> None:
    """Rows breaking each pandera rule at least once: the comparison has teeth."""
    rows = [{**_GOOD, column: bad} for column, values in _BAD_VALUES.items() for bad in values]
    masks, pandera = _both(_chunk(rows, {}))
    assert masks == pandera
    named = {rule for errs in masks.values() for rule in errs}
    assert set(validation.rule_order(contract(REFERENCE_TIME))) <= named


def test_a_broken_mask_path_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison fails when the mask path forgets a rule (here: the frame-wide one)."""
    rows = [{**_GOOD, "total_amount": Decimal("3.00")}]
    real = validation.rule_failures

    def forgetful(frame: pd.DataFrame, schema: Any) -> Any:
        found = real(frame, schema)
        return [f for f in found or [] if not f[1].startswith("total_amount_equals")]

    monkeypatch.setattr(validation, "rule_failures", forgetful)
    masks, pandera = _both(_chunk(rows, {}))
    assert masks != pandera


def test_a_raising_check_falls_back_to_pandera() -> None:
    """A check the mask path cannot run leaves the verdict to pandera's own report."""
    import pandera.pandas as pa_

    schema = contract(REFERENCE_TIME)

    def explode(series: pd.Series) -> pd.Series:
        raise ValueError("boom")

    broken = schema.update_column(
        "category", checks=[*schema.columns["category"].checks, pa_.Check(explode, name="x")]
    )
    frame = pa.Table.from_pylist([], schema=input_arrow_schema()).to_pandas(
        types_mapper=pd.ArrowDtype
    )
    assert rule_failures(frame, broken) is None


@pytest.mark.parametrize(
    ("value", "enabled"), [(None, True), ("1", True), ("0", False), ("off", False), ("No", False)]
)
def test_the_fast_path_switch(value: str | None, enabled: bool) -> None:
    environ = {} if value is None else {FAST_PATH_ENV: value}
    assert fast_path_enabled(environ) is enabled
