"""The quarantine tools against a bucket (moto's S3 server): same code, through the storage."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

import schemas.transaction
from handlers.core.entries import load_entries
from handlers.core.generate import generate_batch
from handlers.core.storage import S3Storage
from handlers.core.transform import transform_object
from pipeline.cli import main
from tests.helpers import encode, table_rows

SOURCES = ("raw/dt=x/one.jsonl", "raw/dt=x/two.jsonl")


def batch(seed: int) -> bytes:
    lines = []
    for n, generated in enumerate(generate_batch(12, seed=seed, reference_time=datetime.now(UTC))):
        record: dict[str, Any] = dict(generated.payload)  # type: ignore[arg-type]
        if n % 4 == 1:
            record["category"] = "Weapons"
        if n % 4 == 2:
            record["quantity"] = "2"
        line = encode(record)
        lines.append(line[:20] if n == 11 else line)
    return b"\n".join(lines) + b"\n"


@pytest.fixture
def filled(bucket: str) -> str:
    storage = S3Storage(bucket)
    for n, key in enumerate(SOURCES):
        storage.put_bytes(key, batch(n))
        transform_object(storage, key)
    return bucket


def objects(bucket: str, prefix: str = "") -> dict[str, bytes]:
    client = boto3.client("s3")
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            out[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return out


def counts(bucket: str) -> tuple[int, int]:
    """(rows of the table's current snapshot, quarantine entries), read independently."""
    entries = sum(len(load_entries(data)) for data in objects(bucket, "quarantine/").values())
    return len(table_rows(S3Storage(bucket))), entries


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_summary_reads_the_table_in_the_bucket(
    filled: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rows, entries = counts(filled)
    assert (rows, entries) == (2 * 5, 2 * 7)  # per batch: 3 + 3 + 1 bad
    code, out, err = run(capsys, "quarantine", "summary", "--bucket", filled, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["lake"] == f"s3://{filled}"
    assert (data["totals"]["processed"], data["totals"]["quarantined"]) == (rows, entries)
    assert {s["source_key"] for s in data["by_source"]} == set(SOURCES)
    assert all(s["transformed_at"] for s in data["by_source"])
    by_rule = {r["rule"]: r["entries"] for r in data["by_rule"]}
    assert by_rule["category:in_catalog"] == 6 and by_rule["json_syntax"] == 2
    code, out, _err = run(capsys, "quarantine", "summary", "--bucket", filled)
    assert code == 0 and "quarantine rate 58.33%" in out


def test_show_and_export_from_the_bucket(
    filled: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _err = run(
        capsys, "quarantine", "show", "--bucket", filled, "--rule", "quantity", "--limit", "50"
    )
    assert code == 0 and out.count("── ") == 6 and "quantity:type(integer)" in out
    target = tmp_path / "export.csv"
    code, _out, err = run(capsys, "quarantine", "export", "--bucket", filled, "--out", str(target))
    assert code == 0 and "exported 14 entries" in err
    assert len(target.read_text().splitlines()) == 15


def test_replay_against_the_bucket_moves_once(
    filled: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = counts(filled)
    monkeypatch.setattr(
        schemas.transaction, "CATEGORIES", (*schemas.transaction.CATEGORIES, "Weapons")
    )
    code, out, _err = run(capsys, "quarantine", "replay", "--bucket", filled, "--dry-run", "--json")
    assert json.loads(out)["moved"] == 6 and counts(filled) == before
    code, out, err = run(capsys, "quarantine", "replay", "--bucket", filled, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["moved"] == 6 and result["still_failing"] == 8
    assert counts(filled) == (before[0] + 6, before[1] - 6)
    # The moved rows are in the table, each with the entry id it was.
    replayed = [r["replayed_entry_id"] for r in table_rows(S3Storage(filled))]
    assert len([i for i in replayed if i]) == 6
    assert all(k.startswith("processed/data/") for k in result["processed_outputs"])
    snapshot = objects(filled, "processed/") | objects(filled, "quarantine/")
    code, out, _err = run(capsys, "quarantine", "replay", "--bucket", filled)
    assert code == 0 and "Nothing changed." in out
    assert objects(filled, "processed/") | objects(filled, "quarantine/") == snapshot


def test_purge_in_the_bucket(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    client = boto3.client("s3")
    [key] = [k for k in objects(filled, "quarantine/") if "one." in k]
    old_key = "quarantine/dt=2020-01-01/" + key.rsplit("/", 1)[1]
    client.copy_object(Bucket=filled, Key=old_key, CopySource={"Bucket": filled, "Key": key})
    client.delete_object(Bucket=filled, Key=key)
    code, out, _err = run(
        capsys, "quarantine", "purge", "--bucket", filled, "--older-than", "30", "--json"
    )
    result = json.loads(out)
    assert code == 0 and result["entries"] == 7 and result["keys"] == [old_key]
    assert old_key not in objects(filled, "quarantine/")
    assert counts(filled)[1] == 7


def test_report_from_the_bucket(
    filled: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "report.html"
    code, _out, err = run(capsys, "report", "--bucket", filled, "--out", str(out_file))
    assert code == 0, err
    page = out_file.read_text()
    start = page.index('id="report-data">') + len('id="report-data">')
    data = json.loads(page[start : page.index("</script>", start)])
    _code, out, _err = run(capsys, "quarantine", "summary", "--bucket", filled, "--json")
    summary = json.loads(out)
    for figures in (data, summary):
        figures.pop("generated_at")
    assert data == summary


def test_stack_reads_the_bucket_from_pulumi(
    filled: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = tmp_path / "bin" / "pulumi"
    fake.parent.mkdir()
    log = tmp_path / "argv"
    fake.write_text(f'#!/bin/sh\necho "$@" > {log}\necho {filled}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    code, out, err = run(capsys, "quarantine", "summary", "--stack", "dev", "--json")
    assert code == 0, err
    assert json.loads(out)["lake"] == f"s3://{filled}"
    assert log.read_text().split()[:5] == ["stack", "output", "bucket", "--stack", "dev"]
    fake.write_text("#!/bin/sh\necho 'error: no stack named dev' >&2\nexit 255\n")
    code, _out, err = run(capsys, "quarantine", "summary", "--stack", "dev")
    assert code == 1 and "no stack named dev" in err


def test_missing_bucket_is_an_operational_error(
    s3_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = run(capsys, "quarantine", "summary", "--bucket", "no-such-bucket-here")
    assert code == 1 and err.startswith("error:") and len(err.strip().splitlines()) == 1
