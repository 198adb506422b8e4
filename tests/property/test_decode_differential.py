"""The fast decode path (Arrow in bulk) against the exact path (one record at a time).

For any bytes cut into slices of any size, both paths must give the same rows, the same
decode errors and contract failures, the same rejected records with the same text, and
the same counts: the fast path is only an optimisation, never a different answer.
"""

from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.json
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from handlers.core import screen
from handlers.core.decode import FAST_PATH_ENV, Chunk, decode, fast_path_enabled
from handlers.core.seen import SeenIds
from handlers.core.validation import validate
from schemas import contract, input_arrow_schema
from tests.helpers import GOOD_RECORD

REFERENCE_TIME = datetime(2026, 1, 10, tzinfo=UTC)

# Values a member may take, as raw JSON text: plain ones the canonical pattern accepts,
# and every shape that must leave it (or Arrow) for the exact path.
_PLAIN_VALUES = st.sampled_from(
    [b'"t-1"', b'"C1"', b"2", b"0", b"-3", b"79.99", b"159.98", b"0.5", b"null", b'""']
)
_HOSTILE_VALUES = st.sampled_from(
    [
        b"1e2",
        b"1E-2",
        b"7.5e0",
        b"-0",
        b"-0.0",
        b"0.0",
        b"1.000",
        b"79.999",
        b"1.10",
        b"12345678901234567890",
        b"9223372036854775807",
        b"-9223372036854775809",
        b"123456789012.34",
        b"99999999999999999.99",
        b"1" + b"0" * 70,
        b"00",
        b"01",
        b"+1",
        b".5",
        b"5.",
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"true",
        b"false",
        b"[]",
        b"{}",
        b'[1,"a"]',
        b'{"a":null}',
        b"[" * 70 + b"]" * 70,
        b'"\\u00e9t\\u00e9"',
        b'"\\ud83d\\ude00"',
        b'"\\ud800"',
        b'"\\udc00x"',
        b'"caf\xc3\xa9"',
        b'"\xff\xfe"',
        b'"\xed\xa0\x80"',
        b'"a\\"b\\\\c\\/d\\n"',
        b'"\\u0000"',
        b'"tab\there"',
        b'"2026-01-05T10:00:00Z"',
        b'"2026-13-45"',
        b'"2026-01-05 10:00:00.123456+05:30"',
        b'"Electronics"',
        b"nul",
        b'"open',
    ]
)
_VALUES = st.one_of(
    _PLAIN_VALUES,
    _HOSTILE_VALUES,
    st.builds(
        lambda s: b'"' + s.encode("utf-8", "surrogatepass") + b'"',
        st.text(st.characters(blacklist_characters='"\\', max_codepoint=0x10FFFF), max_size=6),
    ),
)
_KEYS = st.sampled_from(
    [
        *(k.encode() for k in GOOD_RECORD),
        b"extra",
        b"pric",
        b"prices",
        b"",
        b"\\u0070rice",
        b"caf\xc3\xa9",
        b"\xff",
        b'a\\"b',
    ]
)
_SPACE = st.sampled_from([b"", b"", b" ", b"\t", b"  "])


def _good_members() -> list[tuple[bytes, bytes]]:
    return [(k.encode(), orjson.dumps(v)) for k, v in GOOD_RECORD.items()]


@st.composite
def records(draw: st.DrawFn) -> bytes:
    """One line: usually GOOD_RECORD with a few members changed, dropped, added or repeated."""
    shape = draw(st.sampled_from(["record"] * 6 + ["scalar", "broken", "array"]))
    if shape == "scalar":
        return draw(_VALUES)
    members = _good_members()
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["set", "set", "drop", "add", "repeat", "swap"]))
        at = draw(st.integers(0, max(len(members) - 1, 0)))
        if action == "set" and members:
            members[at] = (members[at][0], draw(_VALUES))
        elif action == "drop" and members:
            members.pop(at)
        elif action == "add":
            members.insert(at, (draw(_KEYS), draw(_VALUES)))
        elif action == "repeat" and members:
            members.append((members[at][0], draw(_VALUES)))
        elif action == "swap" and members:
            members[0], members[at] = members[at], members[0]
    space = draw(_SPACE)
    body = (b"," + space).join(
        b'"' + k + b'"' + draw(_SPACE) + b":" + draw(_SPACE) + v for k, v in members
    )
    text = draw(_SPACE) + b"{" + space + body + space + b"}" + draw(_SPACE)
    if shape == "array":
        text = b"[" + text + b"]"
    elif shape == "broken":
        text = text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    return text


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    """A file: NDJSON (blank lines, CRLF, BOM, no final newline) or a JSON array; maybe gzip."""
    lines = draw(st.lists(st.one_of(records(), st.sampled_from([b"", b"  ", b"\t"])), max_size=12))
    if draw(st.integers(0, 9)) == 0:
        data = b"[\n" + b",\n".join(lines) + b"\n]\n"  # a document (its elements, if any)
    else:
        newline = draw(st.sampled_from([b"\n", b"\r\n"]))
        data = b"".join(line + draw(st.sampled_from([newline, newline, b"\n"])) for line in lines)
        if draw(st.booleans()):
            data = data.rstrip(b"\r\n")
    if draw(st.integers(0, 9)) == 0:
        data = b"\xef\xbb\xbf" + data
    if draw(st.integers(0, 19)) == 0:
        data = gzip.compress(data)
    return data


def _outcome(data: bytes, chunk_bytes: int, fast: bool | None) -> dict[str, Any]:
    """Everything the transformer makes of a decode: rows, entries' text and reasons, counts."""
    rows: list[tuple[Any, ...]] = []
    rejected: list[tuple[Any, ...]] = []
    chunks: list[tuple[int, int]] = []
    tables: list[pa.Table] = []
    decode_errors: dict[int, list[tuple[str, str]]] = {}
    for chunk in decode(io.BytesIO(data), chunk_bytes, fast=fast):
        assert chunk.table.schema.equals(input_arrow_schema())
        chunks.append((chunk.index, chunk.records))
        base = len(rows)
        decode_errors.update({base + i: errs for i, errs in chunk.decode_errors.items()})
        rows.extend(
            (chunk.record_indexes[i], chunk.lines[i], row, chunk.raw(i))
            for i, row in enumerate(chunk.table.to_pylist())
        )
        tables.append(chunk.table)
        rejected.extend((r.record_index, r.line, r.check, r.raw, r.detail) for r in chunk.rejected)
    # The contract's verdict on every row, decode errors included, as the transformer
    # reaches it (one pandera call per file keeps the test fast; ids claimed in file order).
    failures: dict[int, list[tuple[str, str]]] = {}
    if tables:
        whole = Chunk(0, pa.concat_tables(tables), [], [], None, decode_errors)
        failures = validate(whole, contract(REFERENCE_TIME), SeenIds())
    return {
        "chunks": chunks,
        "rows": [(*row, failures.get(i, [])) for i, row in enumerate(rows)],
        "rejected": rejected,
    }


def _assert_paths_agree(data: bytes, chunk_bytes: int) -> None:
    exact = _outcome(data, chunk_bytes, fast=False)
    fast = _outcome(data, chunk_bytes, fast=True)
    # Where chunks end may differ (a canonical slice is one chunk on the fast path, cut
    # into per-line-sized chunks on the exact one); what each record becomes may not.
    for outcome in (fast, exact):
        assert [index for index, _ in outcome["chunks"]] == list(range(len(outcome["chunks"])))
    assert sum(n for _, n in fast["chunks"]) == sum(n for _, n in exact["chunks"])
    assert fast["rejected"] == exact["rejected"]
    assert len(fast["rows"]) == len(exact["rows"])
    for mine, theirs in zip(fast["rows"], exact["rows"], strict=True):
        assert mine == theirs


_TOO_DEEP = b'{"extra":' + b"[" * 70 + b"]" * 70 + b"," + orjson.dumps(GOOD_RECORD)[1:]


# Found by this test (dev profile): a field the contract ignores, nested past the depth
# limit, made a valid row on the fast path and a `json_depth` rejection on the exact path.
@example(b"\xef\xbb\xbf[\n" + orjson.dumps(GOOD_RECORD) + b",\n" + _TOO_DEEP + b"\n]\n", 1)
@example(_TOO_DEEP + b"\n", 4096)
@given(payloads(), st.integers(1, 4096))
def test_fast_path_equals_exact_path(data: bytes, chunk_bytes: int) -> None:
    _assert_paths_agree(data, min(chunk_bytes, len(data) + 1))


# Found by this test (dev profile): a key the contract ignores, named twice, passed as a
# valid row on the fast path (Arrow ignores such fields); the exact path: `duplicate_key`.
@example([b'{"extra":1,"extra":2,' + orjson.dumps(GOOD_RECORD)[1:]], 64)
@given(st.lists(records(), min_size=1, max_size=30), st.integers(64, 16384))
def test_fast_path_equals_exact_path_on_mostly_good_files(
    bad: list[bytes], chunk_bytes: int
) -> None:
    """Long runs of canonical lines (the whole-slice pattern) with the odd bad one."""
    good = orjson.dumps(GOOD_RECORD)
    data = b"\n".join(line for b in bad for line in (good, good, b)) + b"\n"
    _assert_paths_agree(data, chunk_bytes)


@given(
    st.lists(records(), min_size=1, max_size=30),
    st.lists(st.integers(0, 4), min_size=1, max_size=30),
    st.integers(64, 16384),
)
def test_paths_agree_when_slices_are_cut_by_their_record_caps(
    bad: list[bytes], runs: list[int], chunk_bytes: int
) -> None:
    """Small record caps, so slices are cut into parts: by lines, and by per-line records."""
    good = orjson.dumps(GOOD_RECORD)
    lines = [
        line for b, run in zip(bad, runs * len(bad), strict=False) for line in [good] * run + [b]
    ]
    data = b"\n".join(lines) + b"\n"
    with pytest.MonkeyPatch.context() as caps:
        caps.setattr(screen, "MAX_RECORDS_PER_CHUNK", 9)
        caps.setattr(screen, "MAX_EXACT_RECORDS_PER_CHUNK", 2)
        _assert_paths_agree(data, chunk_bytes)
        cut = _outcome(data, chunk_bytes, fast=True)
    assert all(records <= 9 for _, records in cut["chunks"])


def test_environment_switch_turns_the_fast_path_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert fast_path_enabled({})
    assert fast_path_enabled({FAST_PATH_ENV: "1"})
    for off in ("0", "false", "OFF", " no "):
        assert not fast_path_enabled({FAST_PATH_ENV: off})

    # Switched off, decode() never hands a byte to Arrow's JSON reader, and gives the same.
    data = b"\n".join([orjson.dumps(GOOD_RECORD)] * 3 + [_TOO_DEEP]) + b"\n"
    expected = _outcome(data, 4096, fast=True)

    def arrow_reader(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the fast path ran although it is switched off")

    monkeypatch.setenv(FAST_PATH_ENV, "0")
    monkeypatch.setattr(pyarrow.json, "read_json", arrow_reader)
    assert _outcome(data, 4096, fast=None) == expected
