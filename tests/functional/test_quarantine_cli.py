"""`python -m pipeline quarantine …` on a local lake: every command, replay semantics, junk."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

import schemas.transaction
from handlers.core.entries import load_entries
from handlers.core.generate import generate_batch
from handlers.core.storage import LocalStorage, Storage
from handlers.core.transform import transform_object
from pipeline import quarantine as q
from pipeline.cli import main
from tests.helpers import Crash, CrashingStorage, encode, table_rows

TODAY = datetime.now(UTC).replace(microsecond=0)
OLD = TODAY - timedelta(days=10)


@pytest.fixture(autouse=True)
def _today() -> None:
    """Read the clock when each test starts: `--day today` must agree across midnight."""
    global TODAY, OLD
    TODAY = datetime.now(UTC).replace(microsecond=0)
    OLD = TODAY - timedelta(days=10)


EXTRA = "Weapons"


def batch(faults: list[str], seed: int, landed: datetime) -> bytes:
    """NDJSON lines: clean records, or records carrying the named fault."""
    lines, ids = [], []
    for generated, fault in zip(
        generate_batch(len(faults), seed=seed, reference_time=landed), faults, strict=True
    ):
        record: dict[str, Any] = dict(generated.payload)  # type: ignore[arg-type]
        if "weapons" in fault:
            record["category"] = EXTRA
        if "future" in fault:
            record["timestamp"] = (landed + timedelta(days=1)).isoformat()
        if "price_text" in fault:
            record["price"] = "1.00"
        if fault == "duplicate_weapons":
            record["transaction_id"] = ids[0]
        if fault == "formula":
            record["product_name"] = '=HYPERLINK("http://x")'
            record["quantity"] = 0
        if fault == "escape":
            record["customer_id"] = "\x1b[31mred"
            record["quantity"] = 0
        line = encode(record)
        if "spaced" in fault:  # an unusual spelling that must survive rewrites verbatim
            line = line.replace(b'"category":"Weapons"', b'"category" : "Weapons"')
        if fault == "truncated":
            line = line[: len(line) // 2]
        ids.append(record["transaction_id"])
        lines.append(line)
    return b"\n".join(lines) + b"\n"


FAULTS_A = [
    "clean",
    "weapons",
    "future",
    "weapons",
    "truncated",
    "weapons_price_text",
    "duplicate_weapons",
    "formula",
    "escape",
    "clean",
    "spaced_weapons_price_text",
]
FAULTS_B = ["clean", "weapons", "clean", "future", "truncated", "weapons_future"]


def land(root: Path, key: str, data: bytes, landed: datetime) -> Any:
    """Put a raw object with a given landing time, then transform it."""
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (landed.timestamp(), landed.timestamp()))
    return transform_object(LocalStorage(root), key, now=landed + timedelta(seconds=2))


def build_lake(root: Path) -> Path:
    """Three transformed sources. Built afresh rather than copied: an Iceberg table's
    metadata names its files by absolute path, so a copied lake would write to the original."""
    land(root, "raw/dt=a/batch-a.jsonl", batch(FAULTS_A, 1, TODAY), TODAY)
    land(root, "raw/dt=b/batch-b.jsonl", batch(FAULTS_B, 2, TODAY), TODAY)
    land(root, "raw/dt=old/batch-old.jsonl", batch(FAULTS_B, 3, OLD), OLD)
    return root


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return build_lake(tmp_path / "lake")


@contextlib.contextmanager
def catalog_with(category: str) -> Iterator[None]:
    """The contract change used here: the catalog gains a category."""
    original = schemas.transaction.CATEGORIES
    schemas.transaction.CATEGORIES = (*original, category)
    try:
        yield
    finally:
        schemas.transaction.CATEGORIES = original


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def count_lake(root: Path) -> tuple[int, int]:
    """(table rows, quarantine entries) read directly, independently of the tools."""
    rows = len(processed_ids(root))
    entries = sum(len(load_entries(p.read_bytes())) for p in (root / "quarantine").rglob("*.jsonl"))
    return rows, entries


def entries_of_ids(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return entries


def entries_of(root: Path) -> list[dict[str, Any]]:
    return [
        e
        for p in sorted((root / "quarantine").rglob("*.jsonl"))
        for e in load_entries(p.read_bytes())
    ]


def processed_ids(root: Path) -> list[str]:
    """Transaction ids of the table's current snapshot (files no snapshot lists are not rows)."""
    return [r["transaction_id"] for r in table_rows(LocalStorage(root))]


# --------------------------------------------------------------------------- help


@pytest.mark.parametrize(
    ("argv", "phrase"),
    [
        (["quarantine"], "replay"),
        (["quarantine", "summary"], "quarantine rate"),
        (["quarantine", "show"], "original record"),
        (["quarantine", "export"], "JSON Lines"),
        (["quarantine", "replay"], "Running it again changes nothing"),
        (["quarantine", "purge"], "--older-than"),
        (["report"], "inline SVG"),
    ],
)
def test_every_command_explains_itself(
    argv: list[str], phrase: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert phrase in " ".join(out.split())
    if argv != ["quarantine"]:
        assert "--lake" in out and "--bucket" in out and "--stack" in out


def test_usage_errors_exit_2(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["quarantine", "summary", "--lake", str(lake), "--since", "yesterday-ish"])
    assert done.value.code == 2
    with pytest.raises(SystemExit) as done:
        main(["quarantine", "purge", "--lake", str(lake)])  # --older-than is required
    assert done.value.code == 2


def test_missing_lake_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "quarantine", "summary", "--lake", str(tmp_path / "nope"))
    assert code == 1 and err.startswith("error: no lake at")


# --------------------------------------------------------------------------- summary


def test_summary_matches_the_files(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(capsys, "quarantine", "summary", "--lake", str(lake), "--json")
    assert code == 0
    data = json.loads(out)
    rows, entries = count_lake(lake)
    totals = data["totals"]
    assert (totals["processed"], totals["quarantined"]) == (rows, entries)
    assert totals["records"] == rows + entries == 11 + 6 + 6
    assert totals["quarantine_rate"] == round(entries / (rows + entries), 6)
    assert sum(d["quarantined"] for d in data["by_day"]) == entries
    assert sum(d["processed"] for d in data["by_day"]) == rows
    assert {d["day"] for d in data["by_day"]} >= {TODAY.date().isoformat(), OLD.date().isoformat()}
    by_rule = {r["rule"]: r["entries"] for r in data["by_rule"]}
    assert by_rule["category:in_catalog"] == sum(
        1 for e in entries_of(lake) if any(x["check"] == "in_catalog" for x in e["errors"])
    )
    assert by_rule["json_syntax"] == 3
    sources = {s["source_key"]: s for s in data["by_source"]}
    assert sources["raw/dt=a/batch-a.jsonl"]["records"] == 11
    assert {"rule": "category:in_catalog", "value": '"Weapons"'} in [
        {k: v[k] for k in ("rule", "value")} for v in data["top_values"]
    ]
    assert data["problems"] == []

    code, out, _err = run(capsys, "quarantine", "summary", "--lake", str(lake))
    assert code == 0
    assert "quarantine rate" in out and "By rule" in out and "category:in_catalog" in out


def test_summary_filters_by_day(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = OLD.date().isoformat()
    _code, out, _err = run(
        capsys, "quarantine", "summary", "--lake", str(lake), "--json", "--until", old
    )
    data = json.loads(out)
    assert [d["day"] for d in data["by_day"]] == [old]
    assert data["totals"]["records"] == 6
    _code, out, _err = run(
        capsys, "quarantine", "summary", "--lake", str(lake), "--json", "--since", "today"
    )
    assert json.loads(out)["totals"]["records"] == 11 + 6


# --------------------------------------------------------------------------- show / export


def test_show_prints_record_errors_and_origin(
    lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "quarantine", "show", "--lake", str(lake), "--rule", "category", "--limit", "2"
    )
    assert code == 0
    assert out.count("── ") == 2 and "raise --limit" in err
    assert "category:in_catalog" in out and '"Weapons"' in out
    assert "raw/dt=" in out and "line " in out and '"transaction_id"' in out
    _code, out, _err = run(
        capsys, "quarantine", "show", "--lake", str(lake), "--rule", "json_syntax"
    )
    assert "raw text" in out and out.count("── ") == 3
    # Control characters in untrusted records never reach the terminal as such.
    _code, out, _err = run(
        capsys, "quarantine", "show", "--lake", str(lake), "--source", "raw/dt=a/*", "--limit", "99"
    )
    assert "\x1b" not in out and "[31mred" in out


def test_show_selects_by_entry_id_and_source(
    lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = entries_of(lake)[0]
    _code, out, _err = run(
        capsys,
        "quarantine",
        "show",
        "--lake",
        str(lake),
        "--entry-id",
        target["entry_id"],
        "--json",
    )
    shown = [json.loads(line) for line in out.splitlines()]
    assert [s["entry_id"] for s in shown] == [target["entry_id"]]
    _code, out, _err = run(
        capsys,
        "quarantine",
        "show",
        "--lake",
        str(lake),
        "--source",
        "raw/dt=b/batch-b.jsonl",
        "--json",
        "--limit",
        "100",
    )
    assert {json.loads(line)["source_key"] for line in out.splitlines()} == {
        "raw/dt=b/batch-b.jsonl"
    }


def test_export_jsonl_keeps_records_verbatim(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "entries.jsonl"
    code, _out, err = run(
        capsys, "quarantine", "export", "--lake", str(lake), "--out", str(out_file)
    )
    assert code == 0 and "exported 17 entries" in err
    raw = {
        key: (lake / key).read_bytes().split(b"\n")
        for key in (
            "raw/dt=a/batch-a.jsonl",
            "raw/dt=b/batch-b.jsonl",
            "raw/dt=old/batch-old.jsonl",
        )
    }
    for line in out_file.read_bytes().splitlines():
        entry = json.loads(line)
        assert entry["quarantine_key"].startswith("quarantine/dt=")
        source_line = raw[entry["source_key"]][entry["line"] - 1]
        if entry["record_is_raw_text"]:
            assert entry["record"].encode() == source_line
        else:
            # The exported record is the original text, byte for byte.
            start = line.index(b'"record":') + len(b'"record":')
            assert line[start : start + len(source_line)] == source_line


def test_export_csv_is_spreadsheet_safe(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "entries.csv"
    code, _out, _err = run(
        capsys,
        "quarantine",
        "export",
        "--lake",
        str(lake),
        "--rule",
        "quantity",
        "--out",
        str(out_file),
    )
    assert code == 0
    rows = list(csv.DictReader(out_file.open(encoding="utf-8", newline="")))
    assert len(rows) == 2  # the "formula" and "escape" records (quantity 0)
    names = {r["record.product_name"] for r in rows}
    assert '\'=HYPERLINK("http://x")' in names  # a formula is defused
    assert all("quantity:greater_than_or_equal_to(1)" in r["rules"] for r in rows)
    assert {r["record.quantity"] for r in rows} == {"0"}


def test_export_to_stdout_needs_a_format_or_extension(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = run(
        capsys, "quarantine", "export", "--lake", str(lake), "--out", str(tmp_path / "x.txt")
    )
    assert code == 2 and "--format" in err  # bad arguments
    code, out, _err = run(
        capsys, "quarantine", "export", "--lake", str(lake), "--format", "jsonl", "--limit", "3"
    )
    assert code == 0 and len(out.splitlines()) == 3


# --------------------------------------------------------------------------- replay


def _only_rule(entry: dict[str, Any], check: str) -> bool:
    return {e["check"] for e in entry["errors"]} == {check}


def test_replay_dry_run_writes_nothing(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = files(lake)
    with catalog_with(EXTRA):
        code, out, _err = run(
            capsys, "quarantine", "replay", "--lake", str(lake), "--dry-run", "--json"
        )
    assert code == 0
    result = json.loads(out)
    assert result["dry_run"] and result["moved"] > 0 and not result["processed_outputs"]
    assert files(lake) == before


def test_replay_moves_exactly_what_a_catalog_change_accepts(
    lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before_rows, before_entries = count_lake(lake)
    before_entries_all = entries_of(lake)
    before_ids = {e["entry_id"] for e in before_entries_all}
    weapons_only = {e["entry_id"] for e in entries_of(lake) if _only_rule(e, "in_catalog")}
    # The duplicate's id is already in processed/: it must stay, now as a duplicate.
    dup = [e for e in entries_of(lake) if e["record_index"] == 6 and "batch-a" in e["source_key"]]
    weapons_only -= {dup[0]["entry_id"]}
    with catalog_with(EXTRA):
        code, out, err = run(capsys, "quarantine", "replay", "--lake", str(lake), "--json")
    assert code == 0, err
    result = json.loads(out)
    remaining = {e["entry_id"] for e in entries_of(lake)}
    moved = before_ids - remaining
    assert moved == weapons_only and result["moved"] == len(weapons_only)
    rows, entries = count_lake(lake)
    assert (rows, entries) == (before_rows + len(moved), before_entries - len(moved))
    ids = processed_ids(lake)
    assert len(ids) == len(set(ids))  # no transaction twice
    # The duplicate stayed, with its errors updated to what is wrong now.
    still = {e["entry_id"]: e for e in entries_of(lake)}[dup[0]["entry_id"]]
    assert [x["check"] for x in still["errors"]] == ["unique_within_file"]
    assert "revalidated_at" in still
    # Mixed failures stay, errors updated: only the price is wrong now.
    mixed = [
        e
        for e in entries_of(lake)
        if isinstance(e["record"], dict) and e["record"].get("price") == "1.00"
    ]
    assert mixed and all([x["check"] for x in e["errors"]] == ["type(number)"] for e in mixed)
    # The moved rows carry their entry ids and their source's version; DuckDB sees them.
    replayed = {r["replayed_entry_id"]: r for r in table_rows(LocalStorage(lake))}
    assert set(replayed) - {None} == moved
    versions = {e["entry_id"]: e["source_version"] for e in entries_of_ids(before_entries_all)}
    assert all(replayed[i]["source_version"] == versions[i] for i in moved)
    for key in result["processed_outputs"]:
        assert (lake / key).is_file() and key.startswith("processed/data/")
    code, out, _err = run(
        capsys, "query", "--lake", str(lake), "SELECT COUNT(*) AS n FROM transactions"
    )
    assert str(rows) in out
    # Twice changes nothing.
    snapshot = files(lake)
    with catalog_with(EXTRA):
        code, out, _err = run(capsys, "quarantine", "replay", "--lake", str(lake))
    assert code == 0 and "Nothing changed." in out
    assert files(lake) == snapshot


def test_replay_keeps_stored_record_text_verbatim(
    lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = next((lake / "quarantine").rglob("batch-a.*.jsonl"))

    def spaced() -> list[bytes]:
        return [ln for ln in path.read_bytes().splitlines() if b'"category" : "Weapons"' in ln]

    [before] = spaced()  # the odd spelling survived the transform
    with catalog_with(EXTRA):
        run(capsys, "quarantine", "replay", "--lake", str(lake))
    [after] = spaced()  # the file was rewritten, the entry's errors changed…
    assert after != before and b'"revalidated_at"' in after
    # …and the record is still the original text, byte for byte.
    start = before.index(b'"record":')
    end = before.index(b',"record_is_raw_text"')
    assert before[start:end] in after


def test_replay_with_a_later_reference_time_accepts_future_records(
    lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    future_only = {
        e["entry_id"] for e in entries_of(lake) if _only_rule(e, "not_after(landed_at+5min)")
    }
    assert future_only
    code, out, _err = run(
        capsys,
        "quarantine",
        "replay",
        "--lake",
        str(lake),
        "--json",
        "--rule",
        "timestamp:not_after",
    )
    assert json.loads(out)["moved"] == 0  # at the landing time they are still in the future
    later = (TODAY + timedelta(days=3)).isoformat()
    code, out, _err = run(
        capsys, "quarantine", "replay", "--lake", str(lake), "--json", "--reference-time", later
    )
    assert code == 0
    result = json.loads(out)
    assert result["moved"] == len(future_only)
    assert not future_only & {e["entry_id"] for e in entries_of(lake)}


def test_operator_fixed_raw_text_is_reparsed(
    lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = next((lake / "quarantine").rglob("batch-b.*.jsonl"))
    lines = path.read_bytes().splitlines()
    fixed_at = next(n for n, ln in enumerate(lines) if b'"json_syntax"' in ln)
    entry = json.loads(lines[fixed_at])
    good = dict(generate_batch(1, seed=99, reference_time=TODAY)[0].payload)  # type: ignore[arg-type]
    entry["record"] = encode(good).decode()  # the operator repaired the truncated line
    lines[fixed_at] = orjson.dumps(entry)
    path.write_bytes(b"\n".join(lines) + b"\n")
    code, out, _err = run(
        capsys, "quarantine", "replay", "--lake", str(lake), "--json", "--rule", "json_syntax"
    )
    assert code == 0 and json.loads(out)["moved"] == 1
    assert good["transaction_id"] in processed_ids(lake)


def _state(root: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """What a reader should see: processed transaction ids, live quarantine entries."""
    moved = q.load_state(LocalStorage(root), []).replayed
    live = sorted(
        (e["entry_id"], json.dumps(e["errors"], default=str))
        for e in entries_of(root)
        if e["entry_id"] not in moved
    )
    return sorted(processed_ids(root)), live


def test_interrupted_replay_converges_at_every_crash_point(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = TODAY + timedelta(days=3)
    clean = build_lake(tmp_path / "clean")
    with catalog_with(EXTRA):
        q.replay(LocalStorage(clean), reference=reference)
    want = _state(clean)
    total = sum(_count(LocalStorage(lake)))
    budget = 0
    while True:
        copy = build_lake(tmp_path / f"crash-{budget}")
        storage = LocalStorage(copy)
        with catalog_with(EXTRA):
            try:
                q.replay(CrashingStorage(storage, budget), reference=reference)
                finished = True
            except Crash:
                finished = False
            # At the crash, every record is in one place for readers, and none is lost.
            assert sum(_count(storage)) == total
            ids = processed_ids(copy)
            assert len(ids) == len(set(ids))
            q.replay(storage, reference=reference)  # the re-run completes the move
        assert _state(copy) == want, f"crash after {budget} writes"
        assert q.summarise(storage).pending == 0
        if finished:
            break
        budget += 1
    assert budget >= 4  # data files, quarantine rewrite… per file


def _count(storage: Storage) -> tuple[int, int]:
    totals = q.summarise(storage).to_dict()["totals"]
    return totals["processed"], totals["quarantined"]


def test_new_source_version_removes_replayed_rows(
    lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with catalog_with(EXTRA):
        result = q.replay(LocalStorage(lake))
    assert result.outputs
    later = TODAY + timedelta(minutes=1)
    land(lake, "raw/dt=a/batch-a.jsonl", batch(["clean", "clean"], 7, later), later)
    # The new version's commit replaced every row of the key, replayed ones included.
    assert not [
        r
        for r in table_rows(LocalStorage(lake))
        if r["replayed_entry_id"] and "batch-a" in r["source_key"]
    ]
    summary = q.summarise(LocalStorage(lake)).to_dict()
    source = {s["source_key"]: s for s in summary["by_source"]}["raw/dt=a/batch-a.jsonl"]
    assert (source["processed"], source["quarantined"]) == (2, 0)


class NewVersionMidReplay(CrashingStorage):
    """Overwrites a source (and transforms it) just before replay writes its output."""

    def __init__(self, inner: Storage, root: Path) -> None:
        super().__init__(inner, budget=10**6)
        self.root = root
        self.fired = False
        self.written: list[str] = []

    def put_bytes(self, key: str, data: bytes) -> None:
        if key.startswith("processed/data/") and "batch-a" in key and not self.fired:
            self.fired = True
            later = TODAY + timedelta(minutes=1)
            land(self.root, "raw/dt=a/batch-a.jsonl", batch(["clean", "weapons"], 8, later), later)
        if key.startswith("processed/data/"):
            self.written.append(key)
        super().put_bytes(key, data)


def test_replay_racing_a_new_source_version_leaves_no_orphan(lake: Path) -> None:
    storage = NewVersionMidReplay(LocalStorage(lake), lake)
    with catalog_with(EXTRA):
        result = q.replay(storage)
    assert storage.fired
    assert any("changed while replaying" in p.detail for p in result.problems)
    # Its data files were never committed: removed, not left as orphans.
    assert not [k for k in storage.written if "batch-a" in k and (lake / k).exists()]
    summary = q.summarise(LocalStorage(lake)).to_dict()
    source = {s["source_key"]: s for s in summary["by_source"]}["raw/dt=a/batch-a.jsonl"]
    assert source["records"] == 2  # only the new version's two records, each once
    assert summary["problems"] == []


def test_replay_skips_what_it_must_not_touch(
    lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = LocalStorage(lake)
    # A new version of batch-b landed and is being transformed: nothing committed yet,
    # so the table still holds the old version and its entries may still be replayed;
    # an unknown source (no commit at all) must not be touched.
    (lake / "quarantine" / "dt=2026-01-02").mkdir(parents=True)
    stray = lake / "quarantine" / "dt=2026-01-02" / "x.0123456789ab.0123456789.c00000.jsonl"
    entry = next(e for e in entries_of(lake) if "batch-b" in e["source_key"])
    stray.write_bytes(orjson.dumps({**entry, "entry_id": "x", "source_key": "raw/unknown"}))
    with catalog_with(EXTRA):
        result = q.replay(storage)
    assert result.skipped["source not committed to the table (cannot check duplicates)"] == 1
    assert stray.is_file()


# --------------------------------------------------------------------------- purge


def test_purge_removes_only_old_entries(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old_day = OLD.date().isoformat()
    before = files(lake)
    code, out, _err = run(
        capsys, "quarantine", "purge", "--lake", str(lake), "--older-than", "5", "--dry-run"
    )
    assert code == 0 and "Would remove 4 entries in 1 file(s)" in out
    assert files(lake) == before
    code, out, _err = run(
        capsys, "quarantine", "purge", "--lake", str(lake), "--older-than", "5", "--json"
    )
    result = json.loads(out)
    assert code == 0 and result["entries"] == 4 and result["by_day"] == {old_day: 4}
    assert not (lake / "quarantine" / f"dt={old_day}").exists() or not any(
        (lake / "quarantine" / f"dt={old_day}").iterdir()
    )
    assert count_lake(lake)[1] == 17 - 4
    code, out, _err = run(capsys, "quarantine", "purge", "--lake", str(lake), "--older-than", "0")
    assert "Removed 0 entries" in out  # today's entries are not older than 0 days


# --------------------------------------------------------------------------- junk


def test_corrupted_lake_is_reported_and_conserved(
    lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    qfiles = sorted((lake / "quarantine").rglob("*.jsonl"))
    pfiles = sorted((lake / "processed" / "data").rglob("*.parquet"))
    qfiles[0].write_bytes(os.urandom(64))  # garbled
    half = qfiles[1].read_bytes()
    qfiles[1].write_bytes(half[: len(half) - 40])  # truncated mid-line
    # A data file no snapshot lists (a crashed writer's): not part of the table.
    orphan = pfiles[0].with_name("orphan.parquet")
    orphan.write_bytes(pfiles[0].read_bytes()[:100])
    (lake / "quarantine" / "notes.txt").write_text("junk")
    (lake / "quarantine" / "dt=2026-01-01").mkdir()
    (lake / "quarantine" / "dt=2026-01-01" / "x.jsonl").write_text("not json\n")
    copy = qfiles[2].with_name(qfiles[2].name.replace(".c00000.", ".c00077."))
    shutil.copyfile(qfiles[2], copy)  # a stray copy, named like a real chunk

    def readable() -> tuple[int, int]:
        rows = len(processed_ids(lake))
        entries = 0
        for p in (lake / "quarantine").rglob("*.jsonl"):
            for line in p.read_bytes().splitlines():
                with contextlib.suppress(Exception):
                    entries += "entry_id" in json.loads(line)
        return rows, entries

    before = readable()
    code, out, err = run(capsys, "quarantine", "summary", "--lake", str(lake), "--json")
    assert code == 1 and "problem(s) reading the lake" in err
    data = json.loads(out)
    assert data["totals"]["processed"] == before[0]
    copied = len(load_entries(copy.read_bytes()))
    assert data["totals"]["quarantined"] == before[1] - copied  # the copy counts once
    assert any("copies of entries" in p["detail"] for p in data["problems"])
    kinds = {p["key"]: p["severity"] for p in data["problems"]}
    assert kinds["quarantine/notes.txt"] == "warning"
    assert kinds[qfiles[0].relative_to(lake).as_posix()] == "error"
    with catalog_with(EXTRA):
        code, out, err = run(
            capsys,
            "quarantine",
            "replay",
            "--lake",
            str(lake),
            "--json",
            "--reference-time",
            (TODAY + timedelta(days=3)).isoformat(),
        )
    assert code == 1
    result = json.loads(out)
    assert result["moved"] > 0
    # The stray copies of entries that became rows go too (the tools never counted them).
    assert result["reconciled"] > 0
    assert sum(readable()) == sum(before) - result["reconciled"]  # moved, not lost or copied
    ids = processed_ids(lake)
    assert len(ids) == len(set(ids))
    snapshot = files(lake)
    with catalog_with(EXTRA):
        code, out, err = run(
            capsys,
            "quarantine",
            "replay",
            "--lake",
            str(lake),
            "--json",
            "--reference-time",
            (TODAY + timedelta(days=3)).isoformat(),
        )
    assert code == 1 and json.loads(out)["moved"] == 0
    assert files(lake) == snapshot  # junk and all, a second replay changes nothing
    assert (lake / "quarantine" / "dt=2026-01-01" / "x.jsonl").read_text() == "not json\n"
    # A truncated line stays as it was: replay never drops what it cannot read.
    assert half[len(half) - 80 : len(half) - 40] + b"\n" in qfiles[1].read_bytes()
    code, _out, _err = run(capsys, "report", "--lake", str(lake), "--out", str(lake / "r.html"))
    assert code == 1 and (lake / "r.html").is_file()


# --------------------------------------------------------------------------- targets


def test_stack_without_pulumi_is_a_clear_error(
    lake: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    code, _out, err = run(capsys, "quarantine", "summary", "--stack", "dev")
    assert code == 1
    assert "Pulumi CLI is not installed" in err and "--bucket" in err


def test_a_fresh_run_lake_works_with_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--lake",
                str(root),
                "--batches",
                "2",
                "--batch-size",
                "80",
                "--fault-rate",
                "0.3",
            ]
        )
        == 0
    )
    capsys.readouterr()
    for argv in (
        ["quarantine", "summary"],
        ["quarantine", "show", "--limit", "1"],
        ["quarantine", "export", "--out", str(tmp_path / "e.csv")],
        ["quarantine", "replay", "--dry-run"],
        ["quarantine", "replay"],
        ["quarantine", "purge", "--older-than", "30"],
        ["report", "--out", str(tmp_path / "report.html")],
    ):
        code, _out, err = run(capsys, *argv, "--lake", str(root))
        assert code == 0, (argv, err)
    assert "<svg" in (tmp_path / "report.html").read_text()


def test_selection_semantics() -> None:
    entry = {
        "entry_id": "a-b-1",
        "source_key": "raw/dt=2026-01-01/x.jsonl",
        "errors": [{"column": "price", "check": "type(number)"}, {"column": None, "check": "x"}],
    }
    assert q.Selection(rules=("price",)).matches(entry)
    assert q.Selection(rules=("price:type",)).matches(entry)
    assert q.Selection(rules=("type(number)",)).matches(entry)
    assert q.Selection(rules=("x",)).matches(entry)
    assert not q.Selection(rules=("quantity",)).matches(entry)
    assert q.Selection(sources=("raw/dt=2026-01-01/*",)).matches(entry)
    assert not q.Selection(sources=("raw/dt=2026-01-02/*",)).matches(entry)
    assert not q.Selection(entry_ids=frozenset({"other"})).matches(entry)


def test_csv_cells_defuse_formulas_but_keep_numbers() -> None:
    from pipeline.quarantine_cli import csv_cell

    assert csv_cell("=1+1") == "'=1+1"
    assert csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert csv_cell("-5.00") == "-5.00"
    assert csv_cell("plain") == "plain"
    buffer = io.StringIO()
    csv.writer(buffer).writerow([csv_cell("+cmd")])
    assert buffer.getvalue().startswith("'+cmd")
