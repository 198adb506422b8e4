"""Property tests of the transform: conservation, classification, exact round trip, idempotency."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from handlers.core.entries import original_bytes
from handlers.core.storage import LocalStorage
from handlers.core.transform import transform_object
from schemas.catalog import CATEGORIES
from tests.helpers import encode, read_lake, scratch_dir
from tests.oracle import FIELDS, expected_outcome, instant, parse_line

KEY = "raw/batch.jsonl"

text = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=24).filter(
    lambda s: s.strip() != ""
)
zones = st.sampled_from(
    [None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
)


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    moment = draw(
        st.datetimes(
            min_value=datetime(2000, 1, 2), max_value=datetime(2026, 1, 1), timezones=zones
        )
    )
    spec = draw(st.sampled_from(["seconds", "microseconds", "minutes", "milliseconds"]))
    out = moment.isoformat(sep=draw(st.sampled_from(["T", " "])), timespec=spec)
    return out.replace("+00:00", "Z") if draw(st.booleans()) else out


@st.composite
def valid_records(draw: st.DrawFn) -> dict[str, Any]:
    quantity = draw(st.integers(1, 10_000))
    price = draw(st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1_000_000), places=2))
    record = {
        "transaction_id": draw(st.uuids().map(str) | text),
        "timestamp": draw(timestamps()),
        "customer_id": draw(text),
        "product_id": draw(text),
        "product_name": draw(text),
        "category": draw(st.sampled_from(CATEGORIES)),
        "quantity": quantity,
        "price": price,
        "total_amount": quantity * price,
    }
    if draw(st.booleans()):
        record["extra_field"] = draw(st.integers())  # extra fields are ignored
    return record


junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.text(max_size=300),
    st.sampled_from(["", "   ", "\u00a0", "2026-02-30T00:00:00Z", "19.99", "Books", "x" * 257]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def lines(draw: st.DrawFn) -> list[bytes]:
    """Valid records and mutations of them, as raw NDJSON lines."""
    # A clean first line: the file is NDJSON (a leading "[" would make it a JSON array).
    out: list[bytes] = [encode(draw(valid_records()))]
    for record in draw(st.lists(valid_records(), max_size=25)):
        kind = draw(st.sampled_from(["keep", "keep", "field", "drop", "dup", "raw", "blank"]))
        if kind == "field":
            record[draw(st.sampled_from(FIELDS))] = draw(junk)
        elif kind == "drop":
            del record[draw(st.sampled_from(FIELDS))]
        elif kind == "dup" and out:
            prior = parse_line(draw(st.sampled_from(out)))
            if prior is not None and "transaction_id" in prior:
                record["transaction_id"] = prior["transaction_id"]
        line = encode(record)
        if kind == "raw":
            line = draw(
                st.sampled_from(
                    [
                        line[: draw(st.integers(0, max(len(line) - 1, 0)))],
                        line.replace(b'"quantity":', b'"quantity":NaN,"q":'),
                        b"\xff" + line,
                        b"[1, 2, 3]",
                        b'"just a string"',
                        b"null",
                    ]
                )
            )
        out.append(line)
        if kind == "blank":
            out.append(draw(st.sampled_from([b"", b"   ", b"\r"])))
    return out


def _transform(data: bytes) -> tuple[LocalStorage, Any, datetime]:
    root = scratch_dir("lake-")
    path = Path(root, KEY)
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    storage = LocalStorage(root)
    landed = storage.stat(KEY).last_modified
    return storage, transform_object(storage, KEY, chunk_bytes=256), landed


@given(lines(), st.sampled_from(["\n", "\r\n"]), st.booleans(), st.booleans())
def test_every_record_lands_once_in_the_right_place(
    raw_lines: list[bytes], newline: str, gzipped: bool, bom: bool
) -> None:
    data = (b"\xef\xbb\xbf" if bom else b"") + newline.encode().join(raw_lines)
    payload = gzip.compress(data) if gzipped else data
    storage, result, landed = _transform(payload)
    lake = read_lake(storage)
    nonblank = [ln.strip(b" \t\r\n") for ln in raw_lines if ln.strip(b" \t\r\n")]

    # Conservation: every non-blank line is exactly one processed row or one entry.
    assert result.records_in == len(nonblank) == len(lake.rows) + len(lake.entries)
    assert (result.processed, result.quarantined) == (len(lake.rows), len(lake.entries))

    # Classification agrees with the independent oracle, record by record.
    want_processed, want_quarantined = expected_outcome(raw_lines, landed)
    assert sorted(e["record_index"] for e in lake.entries) == want_quarantined
    assert len(lake.rows) == len(want_processed)
    assert len({r["transaction_id"] for r in lake.rows}) == len(lake.rows)

    # Every entry keeps the original record and says why.
    for entry in lake.entries:
        assert entry["errors"] and all("check" in e for e in entry["errors"])
        original = nonblank[entry["record_index"]]
        if entry["record_is_raw_text"]:
            assert original_bytes(entry) == original
        else:
            assert entry["record"] == parse_line(original)

    # Exact round trip of every processed value.
    by_id = {r["transaction_id"]: r for r in lake.rows}
    for position in want_processed:
        source = parse_line(nonblank[position])
        row = by_id[source["transaction_id"]]
        for field in ("customer_id", "product_id", "product_name", "category", "quantity"):
            assert row[field] == source[field]
        assert row["price"] == Decimal(source["price"])
        assert row["total_amount"] == Decimal(source["total_amount"])
        moment = instant(source["timestamp"])
        assert row["timestamp"] == moment and row["timestamp"].utcoffset() == timedelta(0)
        assert (row["year"], row["month"], row["day"]) == (moment.year, moment.month, moment.day)
        assert (row["hour"], row["day_of_week"]) == (moment.hour, moment.weekday())
        assert row["source_key"] == KEY


@given(lines())
def test_redelivery_changes_nothing(raw_lines: list[bytes]) -> None:
    storage, first, _ = _transform(b"\n".join(raw_lines))
    before = read_lake(storage)
    again = transform_object(storage, KEY, chunk_bytes=256)
    assert again.skipped
    assert read_lake(storage).files == before.files
    assert (again.processed, again.quarantined) == (first.processed, first.quarantined)

    # Decided from the table alone: the same rows, and no commit was added.
    assert read_lake(storage).rows == before.rows


@given(st.binary(max_size=3000), st.booleans())
def test_arbitrary_bytes_never_raise(data: bytes, gzipped: bool) -> None:
    payload = gzip.compress(data) if gzipped else data
    storage, result, _ = _transform(payload)
    lake = read_lake(storage)
    assert result.records_in == result.processed + result.quarantined
    assert (len(lake.rows), len(lake.entries)) == (result.processed, result.quarantined)


@given(st.binary(min_size=1, max_size=400))
def test_corrupt_gzip_is_quarantined_not_raised(tail: bytes) -> None:
    good = gzip.compress(b'{"a": 1}\n' * 50)
    storage, result, _ = _transform(good[: len(good) // 2] + tail)
    lake = read_lake(storage)
    assert result.records_in == result.processed + result.quarantined >= 1
    assert len(lake.entries) == result.quarantined
