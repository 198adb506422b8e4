"""The exact path: one record at a time through Python's json, typed by the contract."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from handlers.core import screen
from handlers.core.decode.canonical import INT64
from handlers.core.decode.chunk import Rejected
from schemas import input_arrow_schema
from schemas.transaction import (
    CHECK_DECIMAL_PLACES,
    CHECK_DUPLICATE_KEY,
    CHECK_JSON_DEPTH,
    CHECK_JSON_OBJECT,
    CHECK_JSON_SYNTAX,
    CHECK_UTF8,
    json_type,
    type_check,
)


class _NotFinite(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NotFinite(f"{name} is not a JSON number")


_EXACT = json.JSONDecoder(
    parse_float=Decimal, parse_constant=_reject_constant, object_pairs_hook=screen.unique_pairs
)


def decode_record(text: bytes) -> Rejected | tuple[dict[str, Any], list[tuple[str, str]]]:
    """The exact path: one line to a typed row and its decode errors, or a rejection."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as e:
        return Rejected(text, CHECK_UTF8, None, 0, str(e))
    if screen.too_deep(text):
        return Rejected(text, CHECK_JSON_DEPTH, None, 0, f"nested deeper than {screen.MAX_DEPTH}")
    try:
        obj = _EXACT.decode(decoded)
    except screen.DuplicateKey as e:
        return Rejected(text, CHECK_DUPLICATE_KEY, None, 0, str(e)[:200])
    except (ValueError, RecursionError) as e:
        return Rejected(text, CHECK_JSON_SYNTAX, None, 0, str(e)[:200])
    if not isinstance(obj, dict):
        return Rejected(text, CHECK_JSON_OBJECT, None, 0, f"JSON {type(obj).__name__}")
    return typed_row(obj)


def typed_row(obj: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Coerce a decoded object to the contract's Arrow types, noting each type error."""
    row: dict[str, Any] = {}
    errors: list[tuple[str, str]] = []
    for spec in _field_specs():
        value = obj.get(spec.name)
        if value is None:
            row[spec.name] = None
            continue
        typed, check = _typed(value, spec)
        row[spec.name] = typed
        if check:
            errors.append((spec.name, check))
    return row, errors


@dataclass(frozen=True)
class _FieldSpec:
    """What `_typed` needs to know about a field, worked out once from the schema."""

    name: str
    kind: str  # JSON type: string, integer or number
    type_error: str
    scale: int = 0
    limit: Decimal | None = None  # largest magnitude the decimal column holds
    quantum: Decimal | None = None  # one unit of its last place


@functools.cache
def _field_specs() -> tuple[_FieldSpec, ...]:
    specs = []
    for f in input_arrow_schema():
        spec = _FieldSpec(f.name, json_type(f.type), type_check(f.type))
        if spec.kind == "number":
            scale = f.type.scale
            spec = _FieldSpec(
                f.name,
                spec.kind,
                spec.type_error,
                scale,
                Decimal(10) ** (f.type.precision - scale) - Decimal(1).scaleb(-scale),
                Decimal(1).scaleb(-scale),
            )
        specs.append(spec)
    return tuple(specs)


def _typed(value: Any, spec: _FieldSpec) -> tuple[Any, str | None]:
    if spec.kind == "string":
        if not isinstance(value, str):
            return None, spec.type_error
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate escape such as "\ud800"
            return None, CHECK_UTF8
        return value, None
    if spec.kind == "integer":
        if type(value) is not int:
            return None, spec.type_error
        # Out-of-range integers are clamped so the range check reports them.
        return min(max(value, INT64[0]), INT64[1]), None
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None, spec.type_error
    number = Decimal(value)
    if _decimal_places(number) > spec.scale:
        return None, CHECK_DECIMAL_PLACES
    assert spec.limit is not None and spec.quantum is not None
    # Clamped into the column's range; the range checks then report the original value.
    return max(min(number, spec.limit), -spec.limit).quantize(spec.quantum), None


def _decimal_places(number: Decimal) -> int:
    _sign, digits, exponent = number.as_tuple()
    if not isinstance(exponent, int):
        return 99  # NaN/Infinity never come from JSON, but never pass either
    trailing = len(digits) - len(bytes(digits).rstrip(b"\x00"))
    exponent += min(trailing, max(-exponent, 0))
    return max(-exponent, 0)


@dataclass
class ExactRows:
    """What the exact path made of a group of records."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    at: list[int] = field(default_factory=list)  # each row's position in its group
    texts: list[bytes] = field(default_factory=list)  # each row's text
    errors: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # by index in rows
    rejected: list[Rejected] = field(default_factory=list)  # records that never became rows


def decode_exactly(suspects: Iterable[tuple[int, bytes, int | None, int]]) -> ExactRows:
    """The exact path over (position, text, line, record index) records."""
    out = ExactRows()
    for position, text, line, index in suspects:
        result = decode_record(text)
        if isinstance(result, Rejected):
            result.line = line
            result.record_index = index
            out.rejected.append(result)
            continue
        row, row_errors = result
        if row_errors:
            out.errors[len(out.rows)] = row_errors
        out.rows.append(row)
        out.at.append(position)
        out.texts.append(text)
    return out
