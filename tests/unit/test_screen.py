"""Unit tests of the hostile-input screens, the document splitter and the payload limits."""

from __future__ import annotations

import gzip
import io
from decimal import Decimal

import orjson
import pytest

from handlers.core import documents, screen
from handlers.core.decode import decode, decode_record
from handlers.core.entries import build_entry, jsonable
from handlers.core.payload import open_payload


def test_depth_ignores_brackets_inside_strings() -> None:
    assert screen.depth(b'{"a":"' + b"[" * 500 + b'"}') <= 1
    assert screen.depth(b"[" * 100 + b"]" * 100) == 100
    assert screen.too_deep(b'{"a":' * 65 + b"1" + b"}" * 65)
    assert not screen.too_deep(b'{"a":' * 64 + b"1" + b"}" * 64)


def test_risky_numbers_outside_strings_only() -> None:
    assert screen.has_risky_number(b'{"price":1e-99999999}')
    assert screen.has_risky_number(b'{"price":' + b"9" * 64 + b"}")
    assert not screen.has_risky_number(b'{"note":"1e5 and ' + b"9" * 80 + b'","price":1.5}')


def test_element_end_skips_strings_and_stops_at_the_close() -> None:
    doc = '[["]", {"a": "[["}], 1]'
    assert screen.element_end(doc, 1) == 1 + len('["]", {"a": "[["}]')
    assert screen.element_end("[[[", 0) == 3  # never closes: the end


@pytest.mark.parametrize(
    "line",
    [
        b'{"a":1,"a":2}',
        b'{"transaction_id":"x","transaction_\\u0069d":"y"}',
    ],
)
def test_duplicate_keys_are_rejected_by_the_exact_path(line: bytes) -> None:
    rejected = decode_record(line)
    assert getattr(rejected, "check", None) == "duplicate_key"


def test_deep_record_is_rejected_before_json_recurses() -> None:
    rejected = decode_record(b"[" * 100_000)
    assert getattr(rejected, "check", None) == "json_depth"


def test_huge_exponents_are_written_in_exponent_form() -> None:
    assert orjson.dumps(jsonable(Decimal("1e999999999"))) == b"1E+999999999"
    assert orjson.dumps(jsonable(Decimal("-12.50"))) == b"-12.50"


def test_an_entry_keeps_at_most_the_cap_of_a_record() -> None:
    raw = b'{"transaction_id":"' + b"x" * (2 * screen.ENTRY_RAW_CAP) + b'"}'
    entry = build_entry(
        entry_id="e",
        raw=raw,
        parsed={"transaction_id": "x"},
        errors=[],
        source_key="k",
        source_version="v",
        line=1,
        record_index=0,
        quarantined_at="t",
    )
    assert entry["record_truncated"] is True and entry["record_bytes"] == len(raw)
    assert len(entry["record"]) == screen.ENTRY_RAW_CAP and entry["record_is_raw_text"]


def test_documents_split_verbatim_with_lines_across_windows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(documents, "_STEP", 7)  # windows far smaller than an element
    text = b'[\n  {"price": 1.10, "a": [1, 2]},\n  {"price": 2}\n, 12345\n]\n'
    items = list(documents.elements(io.BytesIO(text)))
    assert [(i.text, i.line) for i in items] == [
        (b'{"price": 1.10, "a": [1, 2]}', 2),
        (b'{"price": 2}', 3),
        (b"12345", 4),
    ]


def test_document_broken_spot_hands_over_the_rest() -> None:
    items = list(documents.elements(io.BytesIO(b'[{"a":1},\n{oops\n{"b":2}\n]')))
    assert isinstance(items[0], documents.Element)
    assert isinstance(items[1], documents.Broken) and items[1].line == 2
    assert items[1].rest.read() == b'{oops\n{"b":2}\n]'


def test_gzip_bomb_stops_with_an_error() -> None:
    member = gzip.compress(b"\x00" * (16 * 1024 * 1024), compresslevel=9)
    payload, guard = open_payload(io.BytesIO(member * 8))
    read = 0
    while block := payload.read(1 << 20):
        read += len(block)
    assert guard is not None and guard.error and "bomb" in guard.error
    assert read < 32 * 1024 * 1024


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_is_read_as_utf8(encoding: str) -> None:
    text = '{"a":"é"}\n{"b":2}\n'
    payload, _ = open_payload(io.BytesIO(text.encode(encoding)))
    assert payload.read() == text.encode("utf-8")
    chunks = list(decode(io.BytesIO(text.encode(encoding))))
    assert sum(c.records for c in chunks) == 2


def test_oversized_line_is_one_rejection_and_lines_stay_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(screen, "MAX_LINE_BYTES", 1000)
    data = b'{"a":1}\n' + b'{"b":"' + b"x" * 5000 + b'"}\n{"c":3}\n'
    chunks = list(decode(io.BytesIO(data), chunk_bytes=256))
    rejected = [r for c in chunks for r in c.rejected if r.check == "line_too_large"]
    assert len(rejected) == 1 and rejected[0].line == 2
    assert sum(c.records for c in chunks) == 3
    assert [line for c in chunks for line in c.lines] == [1, 3]
