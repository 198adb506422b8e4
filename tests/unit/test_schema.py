"""The pandera model is the one source of truth for Arrow, Glue and the docs."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest

from schemas import (
    FIELDS,
    Transaction,
    contract,
    contract_spec,
    input_arrow_schema,
    parse_instants,
    processed_arrow_schema,
)
from schemas.markdown import contract_markdown


def test_every_field_is_described() -> None:
    for name, column in Transaction.to_schema().columns.items():
        assert column.description, f"{name} has no description"


def test_arrow_and_glue_types_come_from_the_model() -> None:
    inputs = input_arrow_schema()
    assert list(inputs.names) == list(FIELDS)
    out = processed_arrow_schema()
    assert out.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert pa.types.is_decimal(out.field("price").type)
    assert pa.types.is_decimal(out.field("total_amount").type)
    assert pa.types.is_integer(out.field("quantity").type)
    assert {"source_key", "ingested_at", "hour", "day_of_week"} <= set(out.names)
    assert not set(out.names) & {"year", "month", "day"}  # partitions
    stored = {f.name: f.stored_type for f in contract_spec().fields}
    assert stored["timestamp"] == pa.timestamp("us", tz="UTC")
    assert all(stored[name] == inputs.field(name).type for name in FIELDS if name != "timestamp")


def test_contract_table_lists_every_field_and_rule() -> None:
    table = contract_markdown()
    for name in FIELDS:
        assert f"| `{name}` |" in table
    for rule in ("not_blank", "in_catalog", "decimal_places(2)", "unique_within_file"):
        assert rule in table


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T10:00:00Z", "2026-01-01T10:00:00+00:00"),
        ("2026-01-01T10:00:00", "2026-01-01T10:00:00+00:00"),
        ("2026-01-01 10:00:00.5+01:00", "2026-01-01T09:00:00.500000+00:00"),
        ("2026-01-01T10:00:00.123456-0530", "2026-01-01T15:30:00.123456+00:00"),
        ("2026-01-01T10:00+02", "2026-01-01T08:00:00+00:00"),
        ("2026-02-30T00:00:00Z", None),
        ("2026-01-01T10:00:00.1234567Z", None),
        ("2026-01-01", None),
        ("2026-01-01T10:00:00Z junk", None),
        ("junk 2026-01-01T10:00:00Z", None),
        ("01/02/2026 10:00", None),
        ("", None),
    ],
)
def test_instants_are_utc_and_strict(text: str, expected: str | None) -> None:
    (value,) = parse_instants(pa.array([text, "2026-01-01T00:00:00Z"])).to_pylist()[:1]
    assert (value.isoformat() if value else None) == expected


def test_one_bad_date_does_not_poison_its_neighbours() -> None:
    values = parse_instants(pa.array(["2026-02-30T00:00:00Z", "2026-03-01T00:00:00Z"]))
    assert values.to_pylist()[0] is None
    assert values.to_pylist()[1] == datetime(2026, 3, 1, tzinfo=UTC)


def test_landing_time_bounds_the_future() -> None:
    landed = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    frame = pd.DataFrame(
        {
            "transaction_id": ["a", "b"],
            "timestamp": ["2026-06-01T12:04:59Z", "2026-06-01T12:05:01Z"],
            "customer_id": ["c", "c"],
            "product_id": ["p", "p"],
            "product_name": ["n", "n"],
            "category": ["Books", "Books"],
            "quantity": [1, 1],
            "price": [Decimal("1.00"), Decimal("1.00")],
            "total_amount": [Decimal("1.00"), Decimal("1.00")],
        }
    )
    table = pa.Table.from_pandas(frame, schema=input_arrow_schema(), preserve_index=False)
    with pytest.raises(Exception) as caught:
        contract(landed).validate(table.to_pandas(types_mapper=pd.ArrowDtype), lazy=True)
    cases = caught.value.failure_cases
    assert list(cases["index"]) == [1]
    assert list(cases["check"]) == ["not_after(landed_at+5min)"]


def test_instants_beyond_year_9999_do_not_crash_the_fallback() -> None:
    # The impossible date forces the value-by-value path, where Python's datetime ends.
    values = parse_instants(pa.array(["2026-02-30T00:00:00Z", "9999-12-31T23:00:00-05:00"]))
    assert values.to_pylist() == [None, None]
