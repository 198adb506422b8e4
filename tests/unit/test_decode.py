"""Every accepted file shape decodes to the same records; broken parts become rejections."""

from __future__ import annotations

import gzip
import io
import json
from decimal import Decimal

import pytest

from handlers.core.decode import decode, decode_record, typed_row

RECORD = {
    "transaction_id": "t1",
    "timestamp": "2026-01-01T00:00:00Z",
    "customer_id": "c",
    "product_id": "p",
    "product_name": "n",
    "category": "Books",
    "quantity": 2,
    "price": 1.25,
    "total_amount": 2.5,
}


def records(
    data: bytes, chunk_bytes: int = 1 << 20
) -> tuple[list[dict], list[tuple[str, int | None]]]:
    rows, rejected = [], []
    for chunk in decode(io.BytesIO(data), chunk_bytes):
        rows += chunk.table.to_pylist()
        rejected += [(r.check, r.line) for r in chunk.rejected]
    return rows, rejected


# As the exact path decodes it: JSON numbers with a fraction become Decimals.
EXACT = {**RECORD, "price": Decimal("1.25"), "total_amount": Decimal("2.5")}


def two() -> list[dict]:
    return [RECORD, {**RECORD, "transaction_id": "t2"}]


NDJSON = b"\n".join(json.dumps(r).encode() for r in two()) + b"\n"


@pytest.mark.parametrize(
    "data",
    [
        NDJSON,
        NDJSON.replace(b"\n", b"\r\n"),
        b"\n\n" + NDJSON.replace(b"\n", b"\n  \n"),
        b"\xef\xbb\xbf" + NDJSON,
        gzip.compress(NDJSON),
        gzip.compress(b"\xef\xbb\xbf" + NDJSON.replace(b"\n", b"\r\n")),
        json.dumps(two()).encode(),
        json.dumps(two(), indent=2).encode(),
        gzip.compress(json.dumps(two(), indent=4).encode()),
        json.dumps(RECORD, indent=2).encode() + b"\n" + json.dumps(two()[1], indent=2).encode(),
    ],
    ids=[
        "ndjson",
        "crlf",
        "blank-lines",
        "bom",
        "gzip",
        "gzip-bom-crlf",
        "array",
        "pretty-array",
        "gzip-pretty-array",
        "pretty-objects",
    ],
)
def test_every_shape_gives_the_same_rows(data: bytes) -> None:
    rows, rejected = records(data)
    assert rejected == []
    assert [r["transaction_id"] for r in rows] == ["t1", "t2"]
    assert rows[0]["price"] == Decimal("1.25") and rows[0]["quantity"] == 2


def test_single_object_file() -> None:
    rows, rejected = records(json.dumps(RECORD).encode())
    assert len(rows) == 1 and not rejected


def test_small_chunks_keep_line_numbers() -> None:
    data = NDJSON * 20 + b"{broken\n" + NDJSON
    rows, rejected = records(data, chunk_bytes=300)
    assert len(rows) == 42
    assert rejected == [("json_syntax", 41)]


@pytest.mark.parametrize(
    ("line", "check"),
    [
        (b'{"a": NaN}', "json_syntax"),
        (b'{"a": Infinity}', "json_syntax"),
        (b'{"a": 1', "json_syntax"),
        (b'{"a": "\xff"}', "utf8"),
        (b"[1, 2]", "json_object"),
        (b"null", "json_object"),
        (b'"text"', "json_object"),
        (b"42", "json_object"),
    ],
)
def test_lines_that_are_not_records_are_rejected(line: bytes, check: str) -> None:
    rows, rejected = records(NDJSON + line + b"\n" + NDJSON)
    assert len(rows) == 4
    assert rejected == [(check, 3)]


def test_truncated_array_keeps_the_good_elements() -> None:
    text = json.dumps(two(), indent=2)
    rows, rejected = records(text[: len(text) - 40].encode())
    assert [r["transaction_id"] for r in rows] == ["t1"]
    assert rejected and all(check == "json_syntax" for check, _ in rejected)


def test_truncated_gzip_keeps_what_decompressed() -> None:
    packed = gzip.compress(NDJSON * 500)
    rows, rejected = records(packed[: len(packed) // 2])
    assert rows and rejected[-1][0] == "gzip"


@pytest.mark.parametrize(
    ("field", "value", "check"),
    [
        ("quantity", "2", "type(integer)"),
        ("quantity", 2.0, "type(integer)"),
        ("quantity", True, "type(integer)"),
        ("price", "1.25", "type(number)"),
        ("price", False, "type(number)"),
        ("price", Decimal("1.255"), "decimal_places(2)"),
        ("price", Decimal("1.0000000000000001"), "decimal_places(2)"),
        ("customer_id", 7, "type(string)"),
        ("customer_id", ["x"], "type(string)"),
        ("customer_id", "\ud800", "utf8"),
    ],
)
def test_type_errors_name_the_field_and_the_rule(field: str, value: object, check: str) -> None:
    row, errors = typed_row({**EXACT, field: value})
    assert errors == [(field, check)]
    assert row[field] is None


def test_exact_path_keeps_money_exact_and_clamps_huge_numbers() -> None:
    row, errors = typed_row({**EXACT, "price": Decimal("19.90"), "quantity": 2**80})
    assert errors == [] and row["price"] == Decimal("19.90")
    assert row["quantity"] == 2**63 - 1  # the range check reports it, no overflow crash
    big, errors = typed_row({**EXACT, "price": Decimal("1e30")})
    assert errors == [] and big["price"] == Decimal("99999999.99")


def test_decode_record_reads_numbers_as_decimals() -> None:
    result = decode_record(b'{"price": 0.1, "quantity": 3}')
    assert not isinstance(result, Exception)
    row, _ = result
    assert row["price"] == Decimal("0.10")


def test_a_leading_array_line_in_ndjson_is_one_record() -> None:
    rows, rejected = records(b'["not", "an", "object"]\n' + NDJSON)
    assert len(rows) == 2 and rejected == [("json_object", 1)]
    whole, none = records(b'[{"a": 1}, {"b": 2}]\n')
    assert len(whole) == 2 and none == []


def test_invalid_utf8_inside_a_string_is_rejected_by_every_path() -> None:
    line = b'{"transaction_id": "\x80", "quantity": 1}'
    for data in (line, NDJSON + line + b"\n", line + b"\n" + NDJSON):
        _rows, rejected = records(data)
        assert ("utf8", data.split(b"\n").index(line) + 1) in rejected


def test_transform_reports_progress_per_chunk(tmp_path) -> None:
    from handlers.core.storage import LocalStorage
    from handlers.core.transform import transform_object

    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "big.jsonl").write_bytes(NDJSON * 50)
    seen: list[int] = []
    result = transform_object(
        LocalStorage(tmp_path),
        "raw/big.jsonl",
        chunk_bytes=1024,
        on_progress=lambda running: seen.append(running.records_in),
    )
    assert len(seen) > 1 and seen == sorted(seen) and seen[-1] == result.records_in == 100
