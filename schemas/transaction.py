"""The transaction data contract: one pandera model drives validation, Arrow, Glue and docs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as arrow
import pyarrow.compute as pc
from pandera.typing import Series

from schemas.catalog import CATEGORIES

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
INSTANT_TYPE = arrow.timestamp("us", tz="UTC")

# Anchored at both ends: Arrow's regex match is a search, pandera's str_matches a prefix match.
ISO8601_PATTERN = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)?$"
_ISO8601 = re.compile(ISO8601_PATTERN)

Text = Annotated[pd.ArrowDtype, arrow.string()]
Integer = Annotated[pd.ArrowDtype, arrow.int64()]
Price = Annotated[pd.ArrowDtype, PRICE_TYPE]
Total = Annotated[pd.ArrowDtype, TOTAL_TYPE]

_TEXT_RULES = {"str_length": {"min_value": 1, "max_value": MAX_TEXT_LENGTH}}
TEXT_FIELDS = ("transaction_id", "customer_id", "product_id", "product_name")


def parse_instants(
    values: pd.Series | arrow.Array | arrow.ChunkedArray, *, remember: bool = True
) -> arrow.TimestampArray:
    """Parse ISO-8601 strings to UTC instants; null where a value is not a valid instant.

    Offset-less values mean UTC. The vectorised Arrow cast handles clean stretches of
    the column; a stretch with an impossible date (e.g. Feb 30) is split until the bad
    values are parsed one by one, so one bad value cannot poison its neighbours.

    Three checks and the writer parse the same column: the last results are kept and
    returned again for equal input, or for that input without its nulls (compared as
    Arrow data, far cheaper than parsing).
    `remember=False` leaves that memory alone (for a thread working ahead).
    """
    strings = _strings_of(values)
    for held, parsed in list(_RECENT):
        same_shape = len(held) == len(strings) and held.null_count == strings.null_count
        if same_shape and _chunked(held).equals(_chunked(strings)):
            return parsed
        # pandera hands its checks the column without nulls: that one is derived too.
        without_nulls = (
            held.null_count > 0
            and strings.null_count == 0
            and len(strings) == len(held) - held.null_count
        )
        if without_nulls and _chunked(pc.drop_null(held)).equals(_chunked(strings)):
            return parsed.filter(pc.is_valid(_chunked(held)).combine_chunks())
    parsed = _parse_instants(strings)
    if remember:
        _RECENT[:] = [(strings, parsed), *_RECENT[: _RECENT_SIZE - 1]]
    return parsed


def remember_instants(
    values: pd.Series | arrow.Array | arrow.ChunkedArray, parsed: arrow.TimestampArray
) -> None:
    """Let `parse_instants(values)` return `parsed`, worked out ahead (on another thread)."""
    _RECENT[:] = [(_strings_of(values), parsed), *_RECENT[: _RECENT_SIZE - 1]]


# The checks see the column without its nulls, the writer with them: two to remember.
_RECENT_SIZE = 2
_RECENT: list[tuple[arrow.Array | arrow.ChunkedArray, arrow.TimestampArray]] = []


def _strings_of(values: pd.Series | arrow.Array | arrow.ChunkedArray) -> arrow.Array:
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.ArrowDtype):
        values = values.array.__arrow_array__()  # the column's own Arrow data, no copy
    if isinstance(values, arrow.Array | arrow.ChunkedArray):
        return values if values.type == arrow.string() else values.cast(arrow.string())
    return arrow.array(values, type=arrow.string(), from_pandas=True)


def _chunked(values: arrow.Array | arrow.ChunkedArray) -> arrow.ChunkedArray:
    return values if isinstance(values, arrow.ChunkedArray) else arrow.chunked_array([values])


def _parse_instants(strings: arrow.Array | arrow.ChunkedArray) -> arrow.TimestampArray:
    if isinstance(strings, arrow.ChunkedArray):
        strings = strings.combine_chunks()
    well_formed = pc.fill_null(pc.match_substring_regex(strings, ISO8601_PATTERN), False)
    if pc.all(pc.ends_with(strings, "Z")).as_py() is not False:
        normalised = strings  # every value carries its offset: nothing to append
    else:
        has_offset = pc.match_substring_regex(strings, r"(Z|[+-]\d{2}(:?\d{2})?)$")
        normalised = pc.if_else(has_offset, strings, pc.binary_join_element_wise(strings, "Z", ""))
    if pc.all(well_formed).as_py():
        candidates = normalised
    else:
        candidates = pc.if_else(well_formed, normalised, arrow.scalar(None, arrow.string()))
    return _cast_instants(candidates)


def _cast_instants(candidates: arrow.Array) -> arrow.TimestampArray:
    try:
        return pc.cast(candidates, INSTANT_TYPE)
    except (arrow.ArrowInvalid, arrow.ArrowNotImplementedError):
        pass
    # Split off the values no calendar can refuse: they cast in one go, and only the
    # rest (Feb 29-31, hour 24, year 9999...) is bisected down to the ones that fail.
    plain = pc.fill_null(pc.match_substring_regex(candidates, _PLAIN_INSTANT_PATTERN), False)
    mask = plain.to_numpy(zero_copy_only=False)
    if not mask.any():
        return _bisect_instants(candidates)
    parts = [_bisect_instants(candidates.filter(plain)), _bisect_instants(candidates.filter(~mask))]
    positions = np.concatenate([np.flatnonzero(mask), np.flatnonzero(~mask)])
    back = np.empty(len(positions), dtype=np.int64)
    back[positions] = np.arange(len(positions))
    return arrow.concat_arrays(parts).take(arrow.array(back))


def _bisect_instants(candidates: arrow.Array) -> arrow.TimestampArray:
    try:
        return pc.cast(candidates, INSTANT_TYPE)
    except (arrow.ArrowInvalid, arrow.ArrowNotImplementedError):
        pass
    if len(candidates) <= 64:
        return arrow.array([_parse_one(v) for v in candidates.to_pylist()], INSTANT_TYPE)
    half = len(candidates) // 2
    return arrow.concat_arrays(
        [_bisect_instants(candidates.slice(0, half)), _bisect_instants(candidates.slice(half))]
    )


# Instants every calendar accepts: years 0002-9998 (an offset cannot push them out of
# range), real days of month (Feb 29 aside), hours 00-23, minutes and seconds 00-59,
# offsets within a day.
_PLAIN_INSTANT_PATTERN = (
    r"^(?:000[2-9]|00[1-9]\d|0[1-9]\d\d|[1-8]\d{3}|9[0-8]\d\d|99[0-8]\d|999[0-8])-"
    r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1\d|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)"
    r"|(?:0[13578]|1[02])-31)"
    r"[T ](?:[01]\d|2[0-3]):[0-5]\d"
    r"(?::[0-5]\d(?:\.\d{1,6})?)?(?:Z|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)?$"
)


def _parse_one(value: str | None) -> datetime | None:
    if value is None or not _ISO8601.match(value):
        return None
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # e.g. 9999-12-31T23:00-05:00 is past year 9999
        return None


def _instants_of(series: pd.Series) -> pd.Series:
    parsed = parse_instants(series)
    return pd.Series(parsed, index=series.index, dtype=pd.ArrowDtype(INSTANT_TYPE))


class Transaction(pa.DataFrameModel):
    """One e-commerce transaction as it arrives in `raw/`."""

    transaction_id: Series[Text] = pa.Field(
        **_TEXT_RULES,
        description="Unique id of the transaction; unique within a raw file.",
        metadata={"unique_within": "file"},
    )
    timestamp: Series[Text] = pa.Field(
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


# Checks applied while decoding JSON, before pandera sees typed columns. They are part
# of the contract, so their names live here beside the model's.
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
RECORD_CHECKS = (
    CHECK_UTF8,
    CHECK_GZIP,
    CHECK_JSON_SYNTAX,
    CHECK_JSON_OBJECT,
    CHECK_JSON_DEPTH,
    CHECK_DUPLICATE_KEY,
    CHECK_LINE_TOO_LARGE,
    CHECK_DOCUMENT_TOO_LARGE,
    CHECK_TRANSFORM_FAILED,
)


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


# Checks whose failures belong to a column although pandera reports them frame-wide.
DATAFRAME_CHECK_COLUMNS = {"total_amount_equals_quantity_times_price": "total_amount"}

FIELDS: tuple[str, ...] = tuple(Transaction.to_schema().columns)


def contract(reference_time: datetime) -> pa.DataFrameSchema:
    """The model's schema plus the check that depends on when the object landed."""
    latest = pd.Timestamp(reference_time.astimezone(UTC) + FUTURE_SLACK)
    schema = Transaction.to_schema()
    column = schema.columns["timestamp"]

    def not_after(series: pd.Series) -> pd.Series:
        return (_instants_of(series) <= latest).fillna(True).astype(bool)

    future = pa.Check(not_after, name=CHECK_NOT_AFTER)
    return schema.update_column("timestamp", checks=[*column.checks, future])


def input_arrow_schema() -> arrow.Schema:
    """Arrow types the raw JSON is decoded into, derived from the model."""
    columns = Transaction.to_schema().columns
    return arrow.schema(
        [arrow.field(name, col.dtype.type.pyarrow_dtype) for name, col in columns.items()]
    )


@dataclass(frozen=True)
class OutputColumn:
    """A column of `processed/`, with where it comes from."""

    name: str
    type: arrow.DataType
    description: str
    partition: bool = False


def output_columns() -> tuple[OutputColumn, ...]:
    """Columns of the processed table, model fields first, then derived and lineage."""
    columns = Transaction.to_schema().columns
    model = tuple(
        OutputColumn(
            name,
            INSTANT_TYPE if name == "timestamp" else col.dtype.type.pyarrow_dtype,
            col.description or "",
        )
        for name, col in columns.items()
    )
    derived = (
        OutputColumn("hour", arrow.int8(), "Hour of the UTC instant (0-23)."),
        OutputColumn("day_of_week", arrow.int8(), "Day of week of the UTC instant, 0 = Monday."),
        OutputColumn("source_key", arrow.string(), "Key of the raw object the row came from."),
        OutputColumn("ingested_at", INSTANT_TYPE, "When the transformer wrote the row (UTC)."),
        OutputColumn("year", arrow.int16(), "Partition: UTC year.", partition=True),
        OutputColumn("month", arrow.int8(), "Partition: UTC month (1-12).", partition=True),
        OutputColumn("day", arrow.int8(), "Partition: UTC day of month.", partition=True),
        # Lineage added with the Iceberg table: appended, so earlier columns keep their ids.
        OutputColumn(
            "source_version",
            arrow.string(),
            "Version (S3 VersionId or ETag, or a local stamp) of the raw object the row came from.",
        ),
        OutputColumn(
            "replayed_entry_id",
            arrow.string(),
            "Quarantine entry id of a row that `quarantine replay` moved here; null otherwise.",
        ),
    )
    return model + derived


PARTITION_COLUMNS: tuple[str, ...] = tuple(c.name for c in output_columns() if c.partition)


def processed_arrow_schema() -> arrow.Schema:
    """Schema of each Parquet file in `processed/` (partition columns live in the path)."""
    return arrow.schema([arrow.field(c.name, c.type) for c in output_columns() if not c.partition])


def glue_type(data_type: arrow.DataType) -> str:
    """Hive/Glue type name of an Arrow type."""
    if arrow.types.is_decimal(data_type):
        return f"decimal({data_type.precision},{data_type.scale})"
    if arrow.types.is_timestamp(data_type):
        return "timestamp"
    names = {
        arrow.string(): "string",
        arrow.int64(): "bigint",
        arrow.int32(): "int",
        arrow.int16(): "smallint",
        arrow.int8(): "tinyint",
        arrow.bool_(): "boolean",
        arrow.float64(): "double",
    }
    try:
        return names[data_type]
    except KeyError as e:
        raise ValueError(f"no Glue type for Arrow type {data_type}") from e


def glue_columns() -> list[dict[str, str]]:
    """Glue table columns (name, type, comment) for `processed/`."""
    return [
        {"name": c.name, "type": glue_type(c.type), "comment": c.description}
        for c in output_columns()
        if not c.partition
    ]


def glue_partition_keys() -> list[dict[str, str]]:
    """Glue partition keys for `processed/`, Hive-style year/month/day."""
    return [
        {"name": c.name, "type": "int", "comment": c.description}
        for c in output_columns()
        if c.partition
    ]


def _rules(name: str) -> list[str]:
    column = Transaction.to_schema().columns[name]
    rules = [CHECK_NOT_NULL]
    rules += [str(check.error or check.name) for check in column.checks]
    return rules


# Column checks made outside the pandera model (RECORD_CHECKS above have no column).
_EXTRA_RULES = {
    "transaction_id": [CHECK_UNIQUE],
    "timestamp": [CHECK_NOT_AFTER],
    "price": [CHECK_DECIMAL_PLACES],
    "total_amount": [CHECK_DECIMAL_PLACES, next(iter(DATAFRAME_CHECK_COLUMNS))],
}


def column_rules(name: str) -> list[str]:
    """Every check that guards one field, in the contract table's order."""
    dtype = Transaction.to_schema().columns[name].dtype.type.pyarrow_dtype
    return [type_check(dtype), *_rules(name), *_EXTRA_RULES.get(name, [])]


def known_rules() -> list[tuple[str | None, str]]:
    """(column, check) of every rule a quarantine entry can name; column None: whole record."""
    rules: list[tuple[str | None, str]] = [(None, check) for check in RECORD_CHECKS]
    rules += [(name, check) for name in FIELDS for check in column_rules(name)]
    return rules


def contract_markdown() -> str:
    """The README's contract table, generated from the model."""
    columns = Transaction.to_schema().columns
    lines = [
        f"Schema version `{SCHEMA_VERSION}`. Extra fields are ignored.",
        "",
        "| field | input type | stored as | rules | description |",
        "|---|---|---|---|---|",
    ]
    stored = {c.name: c.type for c in output_columns()}
    for name, column in columns.items():
        rules = ", ".join(f"`{r}`" for r in column_rules(name))
        lines.append(
            f"| `{name}` | JSON {json_type(column.dtype.type.pyarrow_dtype)} | "
            f"`{glue_type(stored[name])}` | {rules} | {column.description} |"
        )
    lines += ["", "Record- and file-level checks: " + ", ".join(f"`{c}`" for c in RECORD_CHECKS)]
    return "\n".join(lines)
