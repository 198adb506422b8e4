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

from hypothesis import example, given
from hypothesis import strategies as st

from handlers.core.decode import FAST_PATH_ENV, Chunk, decode, fast_path_enabled
from handlers.core.transform import SeenIds, validate
from schemas import contract
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
    return [(k.encode(), _json(v)) for k, v in GOOD_RECORD.items()]


def _json(value: Any) -> bytes:
    import orjson

    return orjson.dumps(value)


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


def _outcome(data: bytes, chunk_bytes: int, fast: bool) -> dict[str, Any]:
    """Everything the transformer makes of a decode: rows, entries' text and reasons, counts."""
    schema = contract(REFERENCE_TIME)
    seen = SeenIds()
    rows: list[tuple[Any, ...]] = []
    rejected: list[tuple[Any, ...]] = []
    chunks: list[tuple[int, int]] = []
    for chunk in decode(io.BytesIO(data), chunk_bytes, fast=fast):
        chunks.append((chunk.index, chunk.records))
        rows.extend(_rows(chunk, validate(chunk, schema, seen)))
        rejected.extend((r.record_index, r.line, r.check, r.raw, r.detail) for r in chunk.rejected)
    return {"chunks": chunks, "rows": rows, "rejected": rejected}


def _rows(chunk: Chunk, failures: dict[int, list[tuple[str, str]]]) -> list[tuple[Any, ...]]:
    assert chunk.table.schema.equals(decode_schema())
    return [
        (chunk.record_indexes[i], chunk.lines[i], row, failures.get(i, []), chunk.raw(i))
        for i, row in enumerate(chunk.table.to_pylist())
    ]


def decode_schema() -> Any:
    from schemas import input_arrow_schema

    return input_arrow_schema()


def _assert_paths_agree(data: bytes, chunk_bytes: int) -> None:
    exact = _outcome(data, chunk_bytes, fast=False)
    fast = _outcome(data, chunk_bytes, fast=True)
    assert fast["chunks"] == exact["chunks"]
    assert fast["rejected"] == exact["rejected"]
    assert len(fast["rows"]) == len(exact["rows"])
    for mine, theirs in zip(fast["rows"], exact["rows"], strict=True):
        assert mine == theirs


@given(payloads(), st.integers(1, 4096))
def test_fast_path_equals_exact_path(data: bytes, chunk_bytes: int) -> None:
    _assert_paths_agree(data, min(chunk_bytes, len(data) + 1))


@given(st.lists(records(), min_size=1, max_size=40), st.integers(1, 600))
def test_fast_path_equals_exact_path_on_mostly_good_files(
    bad: list[bytes], chunk_bytes: int
) -> None:
    """Long runs of canonical lines (the whole-slice pattern) with the odd bad one."""
    good = _json(GOOD_RECORD)
    data = b"\n".join(line for b in bad for line in (good, good, b)) + b"\n"
    _assert_paths_agree(data, chunk_bytes)


def test_environment_switch_turns_the_fast_path_off() -> None:
    assert fast_path_enabled({})
    assert fast_path_enabled({FAST_PATH_ENV: "1"})
    for off in ("0", "false", "OFF", " no "):
        assert not fast_path_enabled({FAST_PATH_ENV: off})
