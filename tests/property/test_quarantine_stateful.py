"""Stateful property: transform, replay (with contract changes), interrupted replay and purge
never lose or duplicate a record across processed/ and quarantine/."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

import schemas.transaction
import tests.oracle as oracle
from handlers.core.entries import load_entries, original_bytes
from handlers.core.generate import generate_batch
from handlers.core.storage import LocalStorage
from handlers.core.transform import transform_object
from pipeline import quarantine as q
from tests.helpers import Crash, CrashingStorage, encode, table_rows

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=2)  # a reference time that accepts the "future" records
EXTRA_CATEGORY = "Weapons"  # the catalog change: a category the business starts selling

# Each record of a batch is clean or carries one fault; some faults are cured by a contract
# change (catalog, reference time), others never are.
FAULTS = ("clean", "weapons", "future", "weapons_future", "duplicate", "truncated", "price_text")


batches = st.tuples(
    # Faults a contract change cures are drawn more often: they are what replay is about.
    st.lists(st.sampled_from(FAULTS) | st.sampled_from(FAULTS[1:4]), min_size=1, max_size=8),
    st.integers(0, 2**16),  # seed
    st.integers(0, 3),  # days before NOW the object lands
)


def batch_bytes(faults: list[str], seed: int, landed: datetime) -> bytes:
    records = generate_batch(len(faults), seed=seed, reference_time=landed)
    lines, ids = [], []
    for generated, fault in zip(records, faults, strict=True):
        record = dict(generated.payload)  # type: ignore[arg-type]
        if "weapons" in fault:
            record["category"] = EXTRA_CATEGORY
        if "future" in fault:
            record["timestamp"] = (landed + timedelta(days=1)).isoformat()
        if fault == "duplicate" and ids:
            record["transaction_id"] = ids[0]
        if fault == "price_text":
            record["price"] = "1.00"
        line = encode(record)
        if fault == "truncated":
            line = line[: len(line) // 2]
        ids.append(record["transaction_id"])
        lines.append(line)
    return b"\n".join(lines) + b"\n"


class QuarantineMachine(RuleBasedStateMachine):
    keys = Bundle("keys")

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="quarantine-sm-"))
        self.storage = LocalStorage(self.root)
        self.expected: dict[str, tuple[str, int]] = {}  # source key -> (version, records in)
        self.purged: Counter[tuple[str, str]] = Counter()  # (source key, version) -> entries
        self.landings = 0
        self.catalog = list(schemas.transaction.CATEGORIES)
        self.patches = [
            mock.patch.object(schemas.transaction, "CATEGORIES", tuple(self.catalog)),
            mock.patch.object(oracle, "CATEGORIES", tuple(self.catalog)),
        ]
        for p in self.patches:
            p.start()

    def teardown(self) -> None:
        for p in self.patches:
            p.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ operations

    def _land(self, key: str, batch: tuple[list[str], int, int]) -> None:
        faults, seed, age = batch
        self.landings += 1
        # A distinct mtime per landing: local versions derive from it, as S3's do from writes.
        landed = NOW - timedelta(days=age) + timedelta(seconds=self.landings)
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(batch_bytes(faults, seed, landed))
        os.utime(path, (landed.timestamp(), landed.timestamp()))
        result = transform_object(self.storage, key, now=landed + timedelta(seconds=1))
        assert not result.skipped
        self.expected[key] = (self.storage.stat(key).version, result.records_in)

    @initialize(target=keys, batch=batches)
    def first_landing(self, batch: tuple[list[str], int, int]) -> str:
        return self.land(batch)

    @rule(target=keys, batch=batches)
    def land(self, batch: tuple[list[str], int, int]) -> str:
        key = f"raw/batch-{self.landings:03d}.jsonl"
        self._land(key, batch)
        return key

    @rule(key=keys, batch=batches)
    def overwrite(self, key: str, batch: tuple[list[str], int, int]) -> None:
        self._land(key, batch)  # a new version: its outputs replace the old ones

    @rule(key=keys)
    def redeliver(self, key: str) -> None:
        assert transform_object(self.storage, key).skipped == "already processed"

    @rule()
    def change_catalog(self) -> None:
        self._catalog(EXTRA_CATEGORY not in self.catalog)

    def _catalog(self, extended: bool | None) -> None:
        """The contract change: the catalog gains (or loses again) a category."""
        if extended is None or extended == (EXTRA_CATEGORY in self.catalog):
            return
        if extended:
            self.catalog.append(EXTRA_CATEGORY)
        else:
            self.catalog.remove(EXTRA_CATEGORY)
        for module in (schemas.transaction, oracle):
            module.CATEGORIES = tuple(self.catalog)  # type: ignore[attr-defined]

    @rule(
        later=st.booleans(),
        dry_run=st.booleans(),
        only=st.sampled_from([None, "category", "timestamp:not_after"]),
        catalog=st.sampled_from([None, True, False]),
    )
    def replay(self, later: bool, dry_run: bool, only: str | None, catalog: bool | None) -> None:
        self._catalog(catalog)
        reference: Any = LATER if later else "landed"
        selection = q.Selection(rules=(only,) if only else ())
        expected = self._expected_moves(reference, selection)
        before = self._snapshot()
        result = q.replay(self.storage, selection, reference=reference, dry_run=dry_run, now=NOW)
        assert not result.problems, result.problems
        moved = {i for o in result.outcomes for i in o.moved}
        assert moved == expected  # exactly what the contract now accepts, nothing else
        event(f"replay moved {'some' if moved else 'none'}{' (dry run)' if dry_run else ''}")
        if result.reconciled:
            event("replay completed an interrupted move")
        assert result.moved + result.still_failing + sum(result.skipped.values()) == (
            result.selected
        )
        if dry_run:
            assert self._snapshot() == before
            return
        after = self._snapshot()
        again = q.replay(self.storage, selection, reference=reference, now=NOW)
        assert not again.changed_anything and again.moved == 0 and again.reconciled == 0
        assert self._snapshot() == after  # replaying twice changes nothing

    @rule(budget=st.integers(0, 5), later=st.booleans(), catalog=st.sampled_from([None, True]))
    def interrupted_replay(self, budget: int, later: bool, catalog: bool | None) -> None:
        self._catalog(catalog)
        crashing = CrashingStorage(self.storage, budget)
        try:
            q.replay(crashing, reference=LATER if later else "landed", now=NOW)
        except Crash:
            event("replay interrupted")

    @rule(days=st.integers(0, 3))
    def purge(self, days: int) -> None:
        result = q.purge(self.storage, days, now=NOW)
        assert not result.problems, result.problems
        self.purged.update(result.by_source_version)
        if result.entries:
            event("purge removed entries")

    # ------------------------------------------------------------------ reading the lake

    def _snapshot(self) -> dict[str, bytes]:
        return {
            p.relative_to(self.root).as_posix(): p.read_bytes()
            for p in sorted(self.root.rglob("*"))
            if p.is_file() and not p.relative_to(self.root).as_posix().startswith("_state/")
        }

    def _rows(self) -> list[dict[str, Any]]:
        """The table's current snapshot, read with plain pyiceberg through the catalog."""
        return table_rows(self.storage)

    def _entries(self) -> list[tuple[str, bytes, dict[str, Any]]]:
        out = []
        for p in sorted((self.root / "quarantine").rglob("*.jsonl")):
            for line, entry in zip(
                [ln for ln in p.read_bytes().splitlines() if ln.strip()],
                load_entries(p.read_bytes()),
                strict=True,
            ):
                out.append((p.relative_to(self.root).as_posix(), line, entry))
        return out

    def _replayed(self, rows: list[dict[str, Any]]) -> dict[str, str]:
        ids: dict[str, str] = {}
        for row in rows:
            entry_id = row["replayed_entry_id"]
            if entry_id is not None:
                assert entry_id not in ids, f"{entry_id} replayed twice"
                ids[entry_id] = row["source_key"]
        return ids

    def _expected_moves(self, reference: Any, selection: q.Selection) -> set[str]:
        """The oracle's view: entries the contract accepts now, first transaction id wins."""
        rows = self._rows()
        replayed = self._replayed(rows)
        moves: set[str] = set()
        for key, (version, _n) in self.expected.items():
            seen = {r["transaction_id"] for r in rows if r["source_key"] == key}
            landed = self.storage.stat(key).last_modified
            when = landed if reference == "landed" else reference
            entries = [
                e
                for _path, _line, e in self._entries()
                if e["source_key"] == key and e["source_version"] == version
            ]
            for entry in sorted(entries, key=lambda e: e["record_index"]):
                if entry["entry_id"] in replayed or not selection.matches(entry):
                    continue
                record = oracle.parse_line(original_bytes(entry))
                if oracle.is_valid(record, when) and record["transaction_id"] not in seen:
                    seen.add(record["transaction_id"])
                    moves.add(entry["entry_id"])
        return moves

    # ------------------------------------------------------------------ the invariant

    @invariant()
    def every_record_in_exactly_one_place(self) -> None:
        rows = self._rows()
        replayed = self._replayed(rows)
        entries = self._entries()
        ids = [e["entry_id"] for _p, _l, e in entries]
        assert len(ids) == len(set(ids)), "an entry is in quarantine twice"
        live = [e for _p, _l, e in entries if e["entry_id"] not in replayed]
        for key, (version, records_in) in self.expected.items():
            mine = [r for r in rows if r["source_key"] == key]
            assert all(r["source_version"] == version for r in mine), f"{key}: stale rows"
            tx_ids = [r["transaction_id"] for r in mine]
            assert len(tx_ids) == len(set(tx_ids)), f"duplicate transaction in {key}"
            waiting = sum(
                1 for e in live if e["source_key"] == key and e["source_version"] == version
            )
            purged = self.purged[(key, version)]
            assert len(mine) + waiting + purged == records_in, (
                key,
                len(mine),
                waiting,
                purged,
                records_in,
            )
        assert {r["source_key"] for r in rows} <= set(self.expected), "rows of no source"
        sources = {(k, v) for k, (v, _n) in self.expected.items()}
        assert all((e["source_key"], e["source_version"]) in sources for e in live)
        # The summary counts the same way: each record once.
        totals = q.summarise(self.storage).to_dict()["totals"]
        assert totals["processed"] == len(rows)
        assert totals["quarantined"] == len(live)
        assert totals["pending_reconciliation"] == len(entries) - len(live)


QuarantineMachine.TestCase.settings = settings(
    max_examples=min(settings().max_examples, 15), stateful_step_count=12, deadline=None
)
TestQuarantineStateful = QuarantineMachine.TestCase
