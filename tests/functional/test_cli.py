"""`python -m pipeline` as a user runs it: real processes, real files, meaningful exit codes."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )


def test_run_end_to_end_prints_queries_and_quarantine(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    done = cli("run", "--lake", str(lake), "--batches", "3", "--batch-size", "80")
    assert done.returncode == 0, done.stderr
    for title in ("revenue_by_category", "hourly_volume", "top_products", "quarantine summary"):
        assert title in done.stdout
    assert "[3/3]" in done.stderr  # progress
    assert "240 records in" in done.stdout
    # The same lake answers ad-hoc SQL through DuckDB.
    count = cli("query", "--lake", str(lake), "SELECT COUNT(*) AS n FROM transactions")
    assert count.returncode == 0, count.stderr
    processed = int(count.stdout.split()[-1])
    assert 150 < processed <= 240


def test_generate_is_deterministic(tmp_path: Path) -> None:
    args = [
        "generate",
        "--count",
        "300",
        "--seed",
        "7",
        "--fault-rate",
        "0.1",
        "--reference-time",
        "2026-11-26T04:00:00Z",
    ]
    assert cli(*args, "--out", str(tmp_path / "a.jsonl")).returncode == 0
    assert cli(*args, "--out", str(tmp_path / "b.jsonl")).returncode == 0
    a, b = (tmp_path / "a.jsonl").read_bytes(), (tmp_path / "b.jsonl").read_bytes()
    assert a == b and a.count(b"\n") == 300


def test_transform_quarantines_and_still_exits_zero(tmp_path: Path) -> None:
    source = tmp_path / "mixed.json.gz"
    records = [
        {
            "transaction_id": "ok",
            "timestamp": "2026-01-01T00:00:00Z",
            "customer_id": "c",
            "product_id": "p",
            "product_name": "n",
            "category": "Books",
            "quantity": 3,
            "price": 0.1,
            "total_amount": 0.3,
        },
        {"transaction_id": "bad", "quantity": "3"},
    ]
    source.write_bytes(gzip.compress(json.dumps(records).encode()))
    lake = tmp_path / "lake"
    done = cli("transform", str(source), "--lake", str(lake), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["records_in"], summary["processed"], summary["quarantined"]) == (2, 1, 1)
    assert (lake / "raw" / "mixed.json.gz").read_bytes() == source.read_bytes()
    # Redelivery of the same file changes nothing.
    again = json.loads(cli("transform", str(source), "--lake", str(lake), "--json").stdout)
    assert again["skipped"] == "already processed"


def test_transform_operational_errors_exit_non_zero(tmp_path: Path) -> None:
    missing = cli("transform", str(tmp_path / "nope.json"), "--lake", str(tmp_path / "lake"))
    assert missing.returncode == 1
    assert missing.stderr.strip().startswith("error: no such file")
    assert len(missing.stderr.strip().splitlines()) == 1

    source = tmp_path / "x.jsonl"
    source.write_text("{}\n")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    unwritable = cli("transform", str(source), "--lake", str(blocker / "lake"))
    assert unwritable.returncode == 1
    assert unwritable.stderr.startswith("error: cannot write to lake")


def test_query_errors_and_usage_errors(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    lake.mkdir()
    empty = cli("query", "--lake", str(lake), "SELECT COUNT(*) FROM transactions")
    assert empty.returncode == 0 and empty.stdout.split()[-1] == "0"
    bad = cli("query", "--lake", str(lake), "SELEC nonsense")
    assert bad.returncode == 1 and bad.stderr.startswith("error: query failed")
    usage = cli("run", "--batches", "0")
    assert usage.returncode == 2 and "--batches" in usage.stderr


@pytest.mark.parametrize("command", ["run", "generate", "transform", "query", "contract"])
def test_every_command_explains_itself(command: str) -> None:
    done = cli(command, "--help")
    assert done.returncode == 0
    assert "usage: pipeline" in done.stdout and len(done.stdout) > 200


def test_contract_command_prints_the_readme_table() -> None:
    done = cli("contract")
    assert done.returncode == 0
    readme = (ROOT / "README.md").read_text()
    assert done.stdout.strip() in readme, "README contract table is stale: run `make contract`"
