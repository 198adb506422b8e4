"""validate_records, replay's way in, gives the transformer's own verdict on each record."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson

from handlers.core.entries import jsonable, load_entries
from handlers.core.seen import SeenIds
from handlers.core.storage import QUARANTINE_PREFIX, LocalStorage
from handlers.core.transform import transform_object, validate_records
from schemas.transaction import CHECK_UNIQUE
from tests.helpers import GOOD_RECORD, encode


def _lines() -> list[bytes]:
    good = dict(GOOD_RECORD)
    return [
        encode(good),
        encode(good),  # the same transaction id again: unique
        encode(good | {"transaction_id": "t-2", "price": "79.99"}),  # type
        encode(good | {"transaction_id": "t-3", "quantity": -1}),  # a pandera check
        encode(good | {"transaction_id": "t-4", "category": None}),  # not nullable
        b'{"transaction_id": "t-5", "price":',  # json syntax
        b"[1, 2]",  # not an object
        b'{"transaction_id": "t-6", "transaction_id": "t-7"}',  # duplicate key
        encode(good | {"transaction_id": "t-8", "timestamp": "2099-01-01T00:00:00Z"}),
        encode(good | {"transaction_id": "t-9"}),
    ]


def _canonical(errors: list[dict]) -> list[bytes]:
    return [orjson.dumps(jsonable(e), option=orjson.OPT_SORT_KEYS) for e in errors]


def test_verdicts_match_what_the_transformer_wrote(tmp_path: Path) -> None:
    lines = _lines()
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "mixed.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    storage = LocalStorage(tmp_path)
    result = transform_object(storage, "raw/mixed.jsonl")
    landed = storage.stat("raw/mixed.jsonl").last_modified
    entries = {
        e["record_index"]: e
        for info in storage.list(QUARANTINE_PREFIX)
        for e in load_entries(storage.read_bytes(info.key))
    }

    verdicts = validate_records(lines, reference_time=landed, seen=SeenIds())

    assert len(verdicts) == len(lines)
    passed = [n for n, v in enumerate(verdicts) if v.row is not None]
    assert len(passed) == result.processed == 2
    assert sorted(entries) == [n for n in range(len(lines)) if n not in passed]
    for n, verdict in enumerate(verdicts):
        if n in entries:
            assert verdict.row is None
            assert _canonical(verdict.errors) == _canonical(entries[n]["errors"])
        else:
            assert verdict.errors == []
            assert verdict.row is not None and verdict.row["transaction_id"] in {"t-1", "t-9"}


def test_ids_already_seen_fail_as_duplicates_and_seen_is_asked_lazily() -> None:
    line = encode(GOOD_RECORD)
    seen = SeenIds()
    first = validate_records([line], reference_time=_landed(), seen=seen)
    assert first[0].row is not None
    again = validate_records([line], reference_time=_landed(), seen=seen)
    assert [(e["column"], e["check"]) for e in again[0].errors] == [
        ("transaction_id", CHECK_UNIQUE)
    ]

    asked: list[int] = []

    def lazily() -> SeenIds:
        asked.append(1)
        return SeenIds()

    rejected = validate_records([b"not json"], reference_time=_landed(), seen=lazily)
    assert rejected[0].row is None and rejected[0].errors[0]["check"] == "json_syntax"
    assert asked == []


def _landed() -> datetime:
    return datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
