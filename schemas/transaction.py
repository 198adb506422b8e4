"""The transaction data contract: the pandera model, and the contract as data derived from it.

`contract_spec()` is the one structure the README table, `pipeline contract`, the HTML
report, the quarantine CLI's rule names and the table's columns are rendered from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Annotated

import pandas as pd
import pandera.pandas as pa
import pyarrow as arrow
from pandera.typing import Series

from schemas.catalog import CATEGORIES
from schemas.instants import INSTANT_TYPE, instant_parser

SCHEMA_VERSION = "1.0.0"

MAX_TEXT_LENGTH = 256
QUANTITY_MIN, QUANTITY_MAX = 1, 10_000
PRICE_MAX = 1_000_000
MONEY_SCALE = 2
EARLIEST_INSTANT = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(minutes=5)

PRICE_TYPE = arrow.decimal128(10, MONEY_SCALE)
# 10,000 x 1,000,000.00 needs 13 digits; 18 keeps it in one INT64 in Parquet.
TOTAL_TYPE = arrow.decimal128(18, MONEY_SCALE)

Text = Annotated[pd.ArrowDtype, arrow.string()]
Integer = Annotated[pd.ArrowDtype, arrow.int64()]
Price = Annotated[pd.ArrowDtype, PRICE_TYPE]
Total = Annotated[pd.ArrowDtype, TOTAL_TYPE]

_TEXT_RULES = {"str_length": {"min_value": 1, "max_value": MAX_TEXT_LENGTH}}
TEXT_FIELDS = ("transaction_id", "customer_id", "product_id", "product_name")


def _instants_of(series: pd.Series) -> pd.Series:
    # Through the parser in effect: a transform's holds the chunk's column parsed once.
    parsed = instant_parser()(series)
    return pd.Series(parsed, index=series.index, dtype=pd.ArrowDtype(INSTANT_TYPE))


class Transaction(pa.DataFrameModel):
    """One e-commerce transaction as it arrives in `raw/`."""

    transaction_id: Series[Text] = pa.Field(
        **_TEXT_RULES,
        description="Unique id of the transaction; unique within a raw file.",
        metadata={"unique_within": "file"},
    )
    timestamp: Series[Text] = pa.Field(
        metadata={"stored_as": "instant"},
        description=(
            "When the purchase happened: ISO-8601, no offset means UTC; stored as a "
            "UTC instant; not before 2000-01-01Z nor more than 5 minutes after the "
            "object landed."
        ),
    )
    customer_id: Series[Text] = pa.Field(**_TEXT_RULES, description="Buying customer.")
    product_id: Series[Text] = pa.Field(**_TEXT_RULES, description="Catalog product id.")
    product_name: Series[Text] = pa.Field(
        **_TEXT_RULES, description="Product name at time of sale."
    )
    category: Series[Text] = pa.Field(description="Catalog category of the product.")
    quantity: Series[Integer] = pa.Field(
        ge=QUANTITY_MIN, le=QUANTITY_MAX, description="Units bought; a JSON integer."
    )
    price: Series[Price] = pa.Field(
        gt=0,
        le=PRICE_MAX,
        description="Unit price; a JSON number with at most 2 decimal places.",
    )
    total_amount: Series[Total] = pa.Field(gt=0, description="quantity x price, exact to the cent.")

    @pa.check(*TEXT_FIELDS, name="not_blank")
    @classmethod
    def _not_blank(cls, series: pd.Series) -> pd.Series:
        # Unicode-aware (NBSP, ideographic space...), unlike a regex's ASCII \s. Same
        # verdict as `str.strip().str.len() > 0` (Arrow uses one whitespace table for
        # both), without building a stripped copy of the column.
        return (series.str.len() > 0) & ~series.str.isspace()

    @pa.check("category", name="in_catalog")
    @classmethod
    def _in_catalog(cls, series: pd.Series) -> pd.Series:
        return series.isin(CATEGORIES)

    @pa.check("timestamp", name="iso8601_instant")
    @classmethod
    def _iso8601(cls, series: pd.Series) -> pd.Series:
        return _instants_of(series).notna()

    @pa.check("timestamp", name=f"not_before({EARLIEST_INSTANT.isoformat()})")
    @classmethod
    def _not_before(cls, series: pd.Series) -> pd.Series:
        # Unparseable values pass here: the iso8601_instant check owns them.
        instants = _instants_of(series)
        return (instants >= pd.Timestamp(EARLIEST_INSTANT)).fillna(True).astype(bool)

    @pa.dataframe_check(name="total_amount_equals_quantity_times_price")
    @classmethod
    def _total(cls, df: pd.DataFrame) -> pd.Series:
        # Decimal arithmetic in Arrow: exact, no float tolerance.
        expected = df["quantity"] * df["price"]
        return (df["total_amount"] == expected).fillna(True).astype(bool)

    class Config:
        strict = False  # extra fields are ignored
        coerce = False  # types are enforced while decoding, never coerced


# Names of the checks made outside the pandera model. Quarantine entries report them
# exactly; `contract_spec()` places each on its field or among the record checks.
CHECK_UTF8 = "utf8"
CHECK_NOT_AFTER = "not_after(landed_at+5min)"
CHECK_GZIP = "gzip"
CHECK_JSON_SYNTAX = "json_syntax"
CHECK_JSON_OBJECT = "json_object"
CHECK_NOT_NULL = "not_nullable"  # pandera's own name for the same rule
CHECK_UNIQUE = "unique_within_file"
CHECK_DECIMAL_PLACES = f"decimal_places({MONEY_SCALE})"
# Hostile-input checks (limits in handlers/core/screen.py): a record or file that could
# exhaust memory or crash a parser is quarantined with one of these, never processed.
CHECK_JSON_DEPTH = "json_depth"
CHECK_DUPLICATE_KEY = "duplicate_key"
CHECK_LINE_TOO_LARGE = "line_too_large"
CHECK_DOCUMENT_TOO_LARGE = "document_too_large"
CHECK_TRANSFORM_FAILED = "transform_failed"  # a whole file that kept failing

# Checks whose failures belong to a column although pandera reports them frame-wide.
DATAFRAME_CHECK_COLUMNS = {"total_amount_equals_quantity_times_price": "total_amount"}


def json_type(data_type: arrow.DataType) -> str:
    """The JSON type a field must have on the wire, from its Arrow type."""
    if arrow.types.is_integer(data_type):
        return "integer"
    if arrow.types.is_decimal(data_type) or arrow.types.is_floating(data_type):
        return "number"
    return "string"


def type_check(data_type: arrow.DataType) -> str:
    """Name of the decode-time type check for a field of `data_type`."""
    return f"type({json_type(data_type)})"


def decimal_places_check(data_type: arrow.DataType) -> str:
    """Name of the decode-time check that a decimal field's number fits its scale."""
    return f"decimal_places({data_type.scale})"


def check_name(check: pa.Check) -> str:
    """A pandera check's name as its failures report it: a built-in's error text, else its name."""
    return str(check.error or check.name)


def contract(reference_time: datetime) -> pa.DataFrameSchema:
    """The model's schema plus the check that depends on when the object landed."""
    latest = pd.Timestamp(reference_time.astimezone(UTC) + FUTURE_SLACK)
    schema = Transaction.to_schema()
    column = schema.columns["timestamp"]

    def not_after(series: pd.Series) -> pd.Series:
        return (_instants_of(series) <= latest).fillna(True).astype(bool)

    future = pa.Check(not_after, name=CHECK_NOT_AFTER)
    return schema.update_column("timestamp", checks=[*column.checks, future])


@cache
def input_arrow_schema() -> arrow.Schema:
    """Arrow types the raw JSON is decoded into, derived from the model."""
    columns = Transaction.to_schema().columns
    return arrow.schema(
        [arrow.field(name, col.dtype.type.pyarrow_dtype) for name, col in columns.items()]
    )


FIELDS: tuple[str, ...] = tuple(Transaction.to_schema().columns)


# --------------------------------------------------------------------------- as data

# Where a check is made. Decoding checks the JSON value before it has a type; pandera
# checks typed columns; the transformer checks file-wide; record checks judge a line,
# document or file that never became a row.
DECODE = "decode"
PANDERA = "pandera"
FILE = "file"
RECORD = "record"
# How the README and the report name each stage, in the order the checks are made.
STAGE_LABELS = {DECODE: "decoding", PANDERA: "pandera", FILE: "file-wide", RECORD: "record"}


@dataclass(frozen=True)
class Check:
    """One rule, named exactly as quarantine entries report it."""

    name: str
    stage: str
    description: str = ""


@dataclass(frozen=True)
class FieldContract:
    """One field of the contract: its types on the wire and in the table, and its checks."""

    name: str
    input_type: arrow.DataType  # what the JSON value is decoded into
    stored_type: arrow.DataType  # the table column's Arrow type
    checks: tuple[Check, ...]
    description: str

    @property
    def json_type(self) -> str:
        return json_type(self.input_type)

    def checks_at(self, stage: str) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.stage == stage)


@dataclass(frozen=True)
class ContractSpec:
    """The whole contract as data: its fields in order, then the record-level checks."""

    version: str
    fields: tuple[FieldContract, ...]
    record_checks: tuple[Check, ...]

    def field(self, name: str) -> FieldContract:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def rules(self) -> list[tuple[str | None, str]]:
        """(column, check) of every rule a quarantine entry can name; None: whole record."""
        rules: list[tuple[str | None, str]] = [(None, c.name) for c in self.record_checks]
        rules += [(f.name, c.name) for f in self.fields for c in f.checks]
        return rules


RECORD_CHECK_DESCRIPTIONS = {
    CHECK_UTF8: "A line or document that is not valid UTF-8.",
    CHECK_GZIP: "A gzip stream that cannot be read to its end: one entry for the unread rest.",
    CHECK_JSON_SYNTAX: "A line or document that is not JSON (truncated, `NaN`, `Infinity`...).",
    CHECK_JSON_OBJECT: "Valid JSON that is not an object.",
    CHECK_JSON_DEPTH: "JSON nested deeper than the decoder allows.",
    CHECK_DUPLICATE_KEY: "An object that names the same key twice.",
    CHECK_LINE_TOO_LARGE: "A line over the size limit: quarantined by its head, never parsed.",
    CHECK_DOCUMENT_TOO_LARGE: "A JSON document or array element over the size limit.",
    CHECK_TRANSFORM_FAILED: "A whole file whose transform kept failing: one entry for the file.",
}
RECORD_CHECKS = tuple(RECORD_CHECK_DESCRIPTIONS)


@cache
def contract_spec() -> ContractSpec:
    """The contract as data, derived from the pandera model and the decoder's typing rules."""
    schema = contract(EARLIEST_INSTANT)  # the landing time changes a bound, not a name
    frame_checks = {DATAFRAME_CHECK_COLUMNS[str(c.name)]: str(c.name) for c in schema.checks}
    fields = tuple(
        FieldContract(
            name=name,
            input_type=column.dtype.type.pyarrow_dtype,
            stored_type=stored_type(column),
            checks=_field_checks(column, frame_checks.get(name)),
            description=column.description or "",
        )
        for name, column in schema.columns.items()
    )
    records = tuple(Check(n, RECORD, d) for n, d in RECORD_CHECK_DESCRIPTIONS.items())
    return ContractSpec(SCHEMA_VERSION, fields, records)


def stored_type(column: pa.Column) -> arrow.DataType:
    """A field's Arrow type in the table: its input type, or a UTC instant if it is one."""
    if (column.metadata or {}).get("stored_as") == "instant":
        return INSTANT_TYPE
    return column.dtype.type.pyarrow_dtype


def _field_checks(column: pa.Column, frame_check: str | None) -> tuple[Check, ...]:
    data_type = column.dtype.type.pyarrow_dtype
    decoded = [type_check(data_type)]
    if json_type(data_type) == "string":
        decoded.append(CHECK_UTF8)  # e.g. a lone surrogate escape
    if arrow.types.is_decimal(data_type):
        decoded.append(decimal_places_check(data_type))
    modelled = [] if column.nullable else [CHECK_NOT_NULL]
    modelled += [check_name(check) for check in column.checks]
    if frame_check is not None:
        modelled.append(frame_check)
    file_wide = [CHECK_UNIQUE] if (column.metadata or {}).get("unique_within") == "file" else []
    return (
        *(Check(n, DECODE) for n in decoded),
        *(Check(n, PANDERA) for n in modelled),
        *(Check(n, FILE) for n in file_wide),
    )


def known_rules() -> list[tuple[str | None, str]]:
    """(column, check) of every rule a quarantine entry can name; column None: whole record."""
    return contract_spec().rules()
