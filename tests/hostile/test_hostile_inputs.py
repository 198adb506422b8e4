"""Hostile files: each runs in a child process capped at 1 GiB of address space.

For every file: the child finishes (no crash, no MemoryError), records in = processed +
quarantined, and the quarantine entries carry the checks the file deserves. Every file is
generated here; large ones cost little disk (gzip members repeat, lines are written in
blocks).
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from handlers.core import screen
from tests.helpers import GOOD_RECORD

ROOT = Path(__file__).resolve().parents[2]
# A plain transform of one good record needs 640-768 MiB of address space here (pyarrow's
# jemalloc and thread pools reserve it up front; RSS is ~150 MB). 1 GiB leaves ~300 MiB:
# any input whose memory followed its size fails this cap.
CAP = 1024 * 1024 * 1024
MB = 1024 * 1024


def good(n: int, prefix: str = "g") -> bytes:
    return b"".join(
        orjson.dumps({**GOOD_RECORD, "transaction_id": f"{prefix}-{i}"}) + b"\n" for i in range(n)
    )


def run_capped(lake: Path, key: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.hostile.runner", str(lake), key, str(CAP)],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, f"child crashed ({done.returncode}): {done.stderr[-2000:]!r}"
    summary: dict[str, Any] = orjson.loads(done.stdout.splitlines()[-1])
    # Conservation, and every quarantined record is one entry.
    assert summary["records_in"] == summary["processed"] + summary["quarantined"]
    assert summary["entries"] == summary["quarantined"]
    return summary


def land(lake: Path, name: str, write: Callable[[Any], None]) -> str:
    path = lake / "raw" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        write(out)
    return f"raw/{name}"


def _one_line_with(price: bytes) -> bytes:
    record = orjson.dumps({**GOOD_RECORD, "transaction_id": "bad"})
    return record.replace(b'"price":79.99', b'"price":' + price) + b"\n"


@pytest.mark.parametrize(
    ("price", "check"),
    [
        (b"1e-99999999", "decimal_places(2)"),  # segfaulted pyarrow's JSON decimal reader
        (b"1e999999999", "less_than_or_equal_to(1000000)"),  # MemoryError formatting it
        (b"1" * 5000, "json_syntax"),  # past Python's int digit limit
    ],
)
def test_absurd_numbers(tmp_path: Path, price: bytes, check: str) -> None:
    key = land(
        tmp_path, "n.jsonl", lambda f: f.write(good(50) + _one_line_with(price) + good(50, "h"))
    )
    s = run_capped(tmp_path, key)
    assert (s["records_in"], s["processed"], s["quarantined"]) == (101, 100, 1)
    assert check in s["checks"], s["checks"]


@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_deep_nesting_as_the_whole_file(tmp_path: Path, opener: bytes) -> None:
    key = land(tmp_path, "deep.json", lambda f: f.write(opener * 100_000))
    s = run_capped(tmp_path, key)
    assert s["quarantined"] == s["records_in"] == 1
    assert set(s["checks"]) == {"json_depth"}


def test_deep_element_inside_an_array_keeps_the_others(tmp_path: Path) -> None:
    records = [orjson.dumps({**GOOD_RECORD, "transaction_id": f"a-{i}"}) for i in range(3)]
    deep = b"[" * 100_000 + b"]" * 100_000
    document = b"[\n" + b",\n".join([records[0], records[1], deep, records[2]]) + b"\n]\n"
    key = land(tmp_path, "array.json", lambda f: f.write(document))
    s = run_capped(tmp_path, key)
    assert (s["records_in"], s["processed"], s["quarantined"]) == (4, 3, 1)
    assert s["checks"] == {"json_depth": 1}


def test_all_bad_slices(tmp_path: Path) -> None:
    n = 2 * screen.MAX_RECORDS_PER_CHUNK + 7  # several record-capped chunks, all bad
    key = land(tmp_path, "empty-objects.jsonl", lambda f: f.write(b"{}\n" * n))
    s = run_capped(tmp_path, key)
    assert (s["records_in"], s["quarantined"]) == (n, n)
    assert s["checks"] == {"not_nullable": n}


def test_long_line_is_skipped_not_held(tmp_path: Path) -> None:
    def write(f: Any) -> None:
        f.write(good(10))
        f.write(b'{"transaction_id":"')
        block = b"x" * MB
        for _ in range(screen.MAX_LINE_BYTES // MB + 8):
            f.write(block)
        f.write(b'"}\n')
        f.write(good(10, "h"))

    s = run_capped(tmp_path, land(tmp_path, "long.jsonl", write))
    assert (s["records_in"], s["processed"], s["quarantined"]) == (21, 20, 1)
    assert s["checks"] == {"line_too_large": 1}


def _array_open(f: Any, records: int, prefix: str = "r") -> None:
    f.write(b"[\n")
    batch = 10_000
    for start in range(0, records, batch):
        rows = [
            orjson.dumps({**GOOD_RECORD, "transaction_id": f"{prefix}-{i}"})
            for i in range(start, min(start + batch, records))
        ]
        f.write((b",\n" if start else b"") + b",\n".join(rows))


def _array(f: Any, records: int) -> None:
    _array_open(f, records)
    f.write(b"\n]\n")


def test_big_array_streams(tmp_path: Path) -> None:
    records = 200_000  # ~46 MB, read through a window of 8 MB (the bench measures 250 MB)
    s = run_capped(tmp_path, land(tmp_path, "big.json", lambda f: _array(f, records)))
    assert (s["records_in"], s["processed"]) == (records, records)


def test_pretty_printed_objects_stream(tmp_path: Path) -> None:
    def write(f: Any) -> None:
        for i in range(30_000):
            f.write(
                orjson.dumps(
                    {**GOOD_RECORD, "transaction_id": f"p-{i}"}, option=orjson.OPT_INDENT_2
                )
            )
            f.write(b"\n")

    s = run_capped(tmp_path, land(tmp_path, "pretty.json", write))
    assert (s["records_in"], s["processed"]) == (30_000, 30_000)


def test_object_element_over_the_limit_is_one_entry(tmp_path: Path) -> None:
    def write(f: Any) -> None:
        f.write(b'{\n  "transaction_id": "t",\n  "note": "')
        for _ in range(screen.MAX_LINE_BYTES // MB + 4):
            f.write(b"y" * MB)
        f.write(b'"\n}\n')

    s = run_capped(tmp_path, land(tmp_path, "big-object.json", write))
    assert (s["records_in"], s["quarantined"]) == (1, 1)
    assert s["checks"] == {"document_too_large": 1}


def test_broken_big_array_keeps_the_records_after_the_break(tmp_path: Path) -> None:
    def write(f: Any) -> None:
        _array_open(f, 40_000, "a")
        f.write(b",\n{broken\n")
        f.write(
            b",\n".join(
                orjson.dumps({**GOOD_RECORD, "transaction_id": f"z-{i}"}) for i in range(100)
            )
        )
        f.write(b"\n]\n")

    s = run_capped(tmp_path, land(tmp_path, "broken.json", write))
    assert (s["records_in"], s["processed"], s["quarantined"]) == (40_101, 40_100, 1)
    assert s["checks"] == {"json_syntax": 1}


def _bomb(f: Any, member_text: bytes, members: int) -> None:
    # Concatenated gzip members: a 2 MB file that expands to 2 GiB, written in a moment.
    member = gzip.compress(member_text, compresslevel=9)
    for _ in range(members):
        f.write(member)


@pytest.mark.parametrize("unit", [b"\x00", b"{}\n"])
def test_gzip_bomb(tmp_path: Path, unit: bytes) -> None:
    text = unit * (16 * MB // len(unit))
    key = land(tmp_path, "bomb.jsonl.gz", lambda f: _bomb(f, text, 128))
    assert (tmp_path / key).stat().st_size < 8 * MB
    s = run_capped(tmp_path, key)
    assert s["checks"].get("gzip") == 1  # stopped, and said so
    assert s["processed"] == 0


def test_gzip_of_real_records_is_not_a_bomb(tmp_path: Path) -> None:
    data = good(20_000)
    key = land(tmp_path, "ok.jsonl.gz", lambda f: f.write(gzip.compress(data)))
    s = run_capped(tmp_path, key)
    assert (s["records_in"], s["processed"]) == (20_000, 20_000)


@pytest.mark.parametrize(
    "line",
    [
        b'{"transaction_id":"d-1","transaction_id":"d-2","price":1}',
        b'{"transaction_id":"d-1","transaction_\\u0069d":"d-2"}',
        b'{"price":79.99,"price":79.99}',
    ],
)
def test_duplicate_keys(tmp_path: Path, line: bytes) -> None:
    # Among good lines (the fast Arrow path) and alone (the exact path).
    for name, content in (("mixed.jsonl", good(100) + line + b"\n"), ("alone.jsonl", line + b"\n")):
        lake = tmp_path / name
        s = run_capped(lake, land(lake, name, lambda f, c=content: f.write(c)))
        assert s["quarantined"] == 1 and s["records_in"] == s["processed"] + 1
        assert s["checks"] == {"duplicate_key": 1}


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_has_no_phantom_record(tmp_path: Path, encoding: str) -> None:
    text = good(3).decode("utf-8")
    key = land(tmp_path, "u16.jsonl", lambda f: f.write(text.encode(encoding)))
    s = run_capped(tmp_path, key)
    assert s["records_in"] == 3  # one per line: no trailing fragment counted
