"""Output names: every name the layout builds parses back into what it was built from."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hypothesis import given
from hypothesis import strategies as st

from handlers.core.layout import (
    OutputName,
    key_id,
    output_base,
    parse_output_name,
    parse_quarantine_key,
    quarantine_key,
    version_token,
)

_source_keys = st.text(min_size=1, max_size=60).map(lambda s: f"raw/dt=2026-11-26/{s}.jsonl")


@given(
    source=_source_keys,
    version=st.text(min_size=1, max_size=40),
    chunk=st.integers(min_value=0, max_value=2_000_000),
    landed=st.datetimes(min_value=datetime(2000, 1, 1), timezones=st.just(UTC)),
    tag=st.sampled_from(["", "failed", "a-b_c9"]),
)
def test_quarantine_keys_round_trip(
    source: str, version: str, chunk: int, landed: datetime, tag: str
) -> None:
    base = output_base(source, version)
    parsed = parse_quarantine_key(quarantine_key(base, chunk, landed, tag))
    assert parsed is not None
    assert parsed.day == landed.date()
    assert parsed.name == OutputName(base, key_id(source), version_token(version), chunk, tag)


def test_a_name_that_looks_like_a_tagged_chunk_is_not_misread() -> None:
    # The stem itself may look like an output name: the key id and token are the last ones.
    source = "raw/x.0123456789ab.0123456789.c00001.jsonl"
    base = output_base(source, "v1")
    name = parse_output_name(f"{base}.c00007")
    assert name == OutputName(base, key_id(source), version_token("v1"), 7, "")


def test_foreign_keys() -> None:
    assert parse_quarantine_key("quarantine/notes.txt") is None
    assert parse_quarantine_key("quarantine/dt=2026-13-40/x.jsonl") is None  # no such day
    assert parse_quarantine_key("processed/dt=2026-01-01/x.jsonl") is None
    odd = parse_quarantine_key("quarantine/dt=2026-01-02/hand-made.jsonl")
    assert odd is not None and odd.day == date(2026, 1, 2) and odd.name is None
    assert parse_output_name("x.0123456789ab.0123456789") is None  # no chunk
