"""Property tests of the generator: clean output passes, each fault is caught by its rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from handlers.core.generate import FAULTS, generate_batch, to_ndjson
from handlers.core.storage import LocalStorage
from handlers.core.transform import transform_object
from tests.helpers import read_lake, scratch_dir
from tests.oracle import expected_outcome

seeds = st.integers(min_value=0, max_value=2**32)
# The landing-time rule needs batches that end about now, as the schedule makes them.
recent = st.integers(min_value=0, max_value=3600).map(
    lambda s: datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=s)
)


def _run(data: bytes) -> tuple[LocalStorage, object, datetime]:
    root = scratch_dir("lake-")
    path = Path(root, "raw/gen.jsonl")
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    storage = LocalStorage(root)
    landed = storage.stat("raw/gen.jsonl").last_modified
    return storage, transform_object(storage, "raw/gen.jsonl"), landed


@given(seeds, recent, st.integers(0, 400))
def test_clean_output_always_passes_the_contract(seed: int, when: datetime, count: int) -> None:
    batch = generate_batch(count, seed=seed, reference_time=when)
    assert all(g.fault is None for g in batch)
    _, result, _ = _run(to_ndjson(batch))
    assert (result.records_in, result.processed, result.quarantined) == (count, count, 0)


@given(seeds, recent, st.floats(min_value=0.05, max_value=1.0))
def test_each_fault_is_caught_by_the_rule_it_targets(
    seed: int, when: datetime, fault_rate: float
) -> None:
    batch = generate_batch(150, seed=seed, reference_time=when, fault_rate=fault_rate)
    storage, result, landed = _run(to_ndjson(batch))
    entries = {e["record_index"]: e for e in read_lake(storage).entries}
    assert result.records_in == len(batch)
    for index, line in enumerate(batch):
        if line.fault is None:
            assert index not in entries, f"clean record {index} quarantined: {entries[index]}"
            continue
        entry = entries.get(index)
        assert entry is not None, f"{line.fault.name} at {index} was not caught"
        caught = [(e["column"], e["check"]) for e in entry["errors"]]
        assert any(
            column == line.fault.column and check.startswith(line.fault.check)
            for column, check in caught
        ), f"{line.fault.name} caught only as {caught}"
    # The oracle agrees on the file as a whole.
    _, quarantined = expected_outcome(to_ndjson(batch).split(b"\n"), landed)
    assert sorted(entries) == quarantined


@given(seeds, recent, st.floats(min_value=0.0, max_value=1.0), st.integers(0, 200))
def test_same_seed_and_time_give_the_same_records(
    seed: int, when: datetime, fault_rate: float, count: int
) -> None:
    first = generate_batch(count, seed=seed, reference_time=when, fault_rate=fault_rate)
    again = generate_batch(count, seed=seed, reference_time=when, fault_rate=fault_rate)
    assert to_ndjson(first) == to_ndjson(again)
    assert [g.fault for g in first] == [g.fault for g in again]
    other = generate_batch(count, seed=seed + 1, reference_time=when, fault_rate=fault_rate)
    if count:
        assert to_ndjson(other) != to_ndjson(first)


def test_fault_catalogue_covers_every_rule() -> None:
    from schemas.markdown import contract_markdown

    targeted = {(f.column, f.check) for f in FAULTS}
    table = contract_markdown()
    rows = {line.split("`")[1]: line for line in table.splitlines() if line.startswith("| `")}
    for column, check in targeted:
        if column is not None:
            # The rule a fault targets is documented on that field's row of the contract.
            assert f"`{check}" in rows[column], (column, check)
    checks = {c for _, c in targeted}
    for rule in (
        "not_nullable",
        "not_blank",
        "str_length",
        "type(string)",
        "type(integer)",
        "type(number)",
        "iso8601",
        "not_before",
        "not_after",
        "in_catalog",
        "greater_than",
        "less_than_or_equal_to",
        "decimal_places",
        "total_amount_equals",
        "unique_within_file",
        "json_syntax",
        "json_object",
        "utf8",
    ):
        assert any(c.startswith(rule) for c in checks), f"no fault targets {rule}"
