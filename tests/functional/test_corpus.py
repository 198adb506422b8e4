"""A corpus of malformed and corrupted files through `python -m pipeline transform`."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from handlers.core.commit import committed_sources
from handlers.core.generate import FAULTS, generate_batch, to_ndjson
from handlers.core.storage import LocalStorage
from handlers.core.table import load_table
from pipeline.cli import main
from tests.helpers import read_lake


def now() -> datetime:
    """A reference time read when the data is made, never frozen at import (midnight)."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)


def batch(count: int = 120, fault_rate: float = 0.3, seed: int = 3) -> bytes:
    lines = generate_batch(count, seed=seed, reference_time=now(), fault_rate=fault_rate)
    return to_ndjson(lines)


def clean_objects(count: int = 5) -> list[dict]:
    return [json.loads(line) for line in batch(count, 0.0, seed=9).splitlines()]


def corpus() -> dict[str, tuple[bytes, int]]:
    """Each file of the corpus and how many records it holds, made when a test runs."""
    return {
        "faults.jsonl": (batch(), 120),
        "faults-crlf-bom.jsonl": (b"\xef\xbb\xbf" + batch().replace(b"\n", b"\r\n"), 120),
        "faults-blank-lines.jsonl": (batch().replace(b"\n", b"\n\n  \n"), 120),
        "faults.json.gz": (gzip.compress(batch()), 120),
        "faults-named-plainly.json": (gzip.compress(batch()), 120),
        "array.json": (json.dumps(clean_objects()).encode(), 5),
        "array-pretty.json": (json.dumps(clean_objects(), indent=2).encode(), 5),
        "array-with-junk.json": (json.dumps([*clean_objects(3), 1, None, "x", [2]]).encode(), 7),
        "object.json": (json.dumps(clean_objects(1)[0], indent=2).encode(), 1),
        "empty.jsonl": (b"", 0),
        "blank.jsonl": (b"\n \r\n\t\n", 0),
        "empty-array.json": (b"[]", 0),
        "utf16.jsonl": ("\n".join(["{}"] * 3).encode("utf-16"), 3),
        "binary.bin": (bytes(range(256)) * 4, 5),
        "nan-and-friends.jsonl": (
            b'{"price": NaN}\n{"price": Infinity}\n{"price": -Infinity}\n',
            3,
        ),
        "nulls.jsonl": (b"null\nnull\n{}\n", 3),
    }


@pytest.mark.parametrize("name", sorted(corpus()))
def test_every_record_lands_exactly_once(name: str, tmp_path: Path) -> None:
    data, expected = corpus()[name]
    source = tmp_path / name
    source.write_bytes(data)
    lake = tmp_path / "lake"
    assert main(["transform", str(source), "--lake", str(lake)]) == 0
    contents = read_lake(LocalStorage(lake))
    # The commit's snapshot summary records the counts of the version it made current.
    (committed,) = committed_sources(load_table(LocalStorage(lake))).values()
    summary = committed.counts
    assert summary["records_in"] == len(contents.rows) + len(contents.entries)
    if name != "binary.bin":  # its "lines" depend on where newline bytes fall
        assert summary["records_in"] == expected
    assert all(entry["errors"] for entry in contents.entries)
    assert len({r["transaction_id"] for r in contents.rows}) == len(contents.rows)

    before = dict(contents.files)
    assert main(["transform", str(source), "--lake", str(lake)]) == 0
    assert read_lake(LocalStorage(lake)).files == before  # redelivery changes nothing


def test_fault_corpus_reasons_match_their_labels(tmp_path: Path) -> None:
    # ~25 of each kind: every fault kind is in the batch (asserted below), whatever the time.
    lines = generate_batch(len(FAULTS) * 40, seed=11, reference_time=now(), fault_rate=0.6)
    assert {line.fault.name for line in lines if line.fault} == {f.name for f in FAULTS}
    source = tmp_path / "labelled.jsonl"
    source.write_bytes(to_ndjson(lines))
    assert main(["transform", str(source), "--lake", str(tmp_path / "lake")]) == 0
    entries = {e["record_index"]: e for e in read_lake(LocalStorage(tmp_path / "lake")).entries}
    caught = set()
    for index, line in enumerate(lines):
        if line.fault:
            checks = [(e["column"], e["check"]) for e in entries[index]["errors"]]
            assert any(c == line.fault.column and k.startswith(line.fault.check) for c, k in checks)
            caught.add(line.fault.name)
    assert caught == {f.name for f in FAULTS}  # every kind of fault, each by its own rule
