"""What a new user trips on: each case gets a clear message and the documented exit code."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from handlers.core.generate import generate_batch, to_ndjson
from pipeline.cli import EXIT_USAGE, main
from pipeline.query import display_width, format_table
from schemas.transaction import known_rules

ROOT = Path(__file__).resolve().parents[2]
PAST = datetime(2026, 1, 5, 12, tzinfo=UTC)  # fixed, and before any landing time


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def lake(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A lake with processed rows and quarantine entries of several rules."""
    source = tmp_path / "faulty.jsonl"
    code, _, err = run(
        capsys, "generate", "--count", "200", "--seed", "5", "--fault-rate", "0.2",
        "--out", str(source),
    )  # fmt: skip
    assert code == 0, err
    assert run(capsys, "transform", str(source), "--lake", str(tmp_path / "lake"))[0] == 0
    return tmp_path / "lake"


# -- query ------------------------------------------------------------------------------


@pytest.mark.parametrize("sql", ["", " ", "-- comment", ";", " ; ;\n", "/* nothing */;"])
def test_query_without_a_statement_is_a_usage_error(
    sql: str, lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "query", "--lake", str(lake), sql)
    assert code == EXIT_USAGE
    assert "no SQL statement" in err and "Traceback" not in err and out == ""


def test_query_with_an_empty_sql_file_is_a_usage_error(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.sql"
    empty.write_text("-- only a comment\n")
    code, _, err = run(capsys, "query", "--lake", str(lake), str(empty))
    assert code == EXIT_USAGE and f"no SQL statement in {empty}" in err


def test_comment_markers_inside_a_real_query_still_run(
    lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "query", "--lake", str(lake), "SELECT '--' AS x; -- trailing")
    assert code == 0, err
    assert out.split()[-1] == "--"


# -- transform --------------------------------------------------------------------------


def test_transform_of_an_unreadable_file_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "secret.jsonl"
    source.write_bytes(b"{}\n")
    source.chmod(0)
    if os.geteuid() == 0:  # root reads anything: make the open fail as it would for a user
        real_open = Path.open

        def denied(self: Path, *args: object, **kwargs: object) -> object:
            if self == source:
                raise PermissionError(13, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(Path, "open", denied)
    code, _, err = run(capsys, "transform", str(source), "--lake", str(tmp_path / "lake"))
    assert code == 1
    assert f"cannot read input file {source}: Permission denied" in err
    assert "lake" not in err


def test_transform_of_a_directory_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    code, _, err = run(capsys, "transform", str(tmp_path), "--lake", str(tmp_path / "lake"))
    assert code == EXIT_USAGE
    assert f"{tmp_path} is a directory" in err and "no such file" not in err


def test_a_new_file_with_the_same_name_says_what_it_replaced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    day1, day2 = tmp_path / "day1" / "orders.jsonl", tmp_path / "day2" / "orders.jsonl"
    for path, count, seed in ((day1, 30, 1), (day2, 10, 2)):
        path.parent.mkdir()
        path.write_bytes(to_ndjson(generate_batch(count, seed=seed, reference_time=PAST)))
    lake = str(tmp_path / "lake")
    code, out, _ = run(capsys, "transform", str(day1), "--lake", lake)
    assert code == 0 and "replaced" not in out
    code, out, _ = run(capsys, "transform", str(day2), "--lake", lake)
    assert code == 0
    assert "replaced an earlier version of raw/orders.jsonl: its 30 rows left the lake" in out
    code, out, _ = run(capsys, "transform", str(day2), "--lake", lake, "--json")
    assert json.loads(out)["replaced"] is None  # the same file again: a redelivery
    readme = (ROOT / "README.md").read_text()
    assert "The file name is the key" in readme


def test_replacing_an_unfinished_version_claims_no_row_count() -> None:
    from pipeline.cli import replaced_note

    unfinished = {"version": "v1", "complete": False, "processed": 0, "quarantined": 0}
    note = replaced_note("raw/orders.jsonl", unfinished)
    assert "unfinished earlier version of raw/orders.jsonl" in note and "rows left" not in note


# -- quarantine -------------------------------------------------------------------------


def test_export_without_out_writes_json_lines_to_stdout(
    lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "quarantine", "export", "--lake", str(lake))
    assert code == 0, err
    entries = [json.loads(line) for line in out.splitlines()]
    assert entries and all(e["errors"] and e["entry_id"] for e in entries)
    assert f"exported {len(entries)} entries to stdout (jsonl)" in err


def test_export_to_stdout_as_csv(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "quarantine", "export", "--lake", str(lake), "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows and all(r["entry_id"] for r in rows)


def test_export_to_a_file_of_unknown_format_is_a_usage_error(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "entries.txt"
    code, _, err = run(capsys, "quarantine", "export", "--lake", str(lake), "--out", str(out))
    assert code == EXIT_USAGE and "pass --format csv|jsonl" in err


@pytest.mark.parametrize("argv", [["--format", "xml"], ["--limit", "-1"]])
def test_export_bad_options_exit_2(
    argv: list[str], lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["quarantine", "export", "--lake", str(lake), *argv])
    assert done.value.code == EXIT_USAGE
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["show", "export", "replay"])
def test_a_rule_that_matches_no_check_names_the_rules(
    command: str, lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "quarantine", command, "--lake", str(lake), "--rule", "nosuchrule")
    assert code == EXIT_USAGE and out == ""
    assert "'nosuchrule' matches no rule of the contract" in err
    for column, check in known_rules():
        assert (f"{column}:{check}" if column else check) in err


@pytest.mark.parametrize("rule", ["price", "price:type", "type(number)", "json_syntax"])
def test_rules_given_as_column_check_or_prefix_are_accepted(
    rule: str, lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "quarantine", "show", "--lake", str(lake), "--rule", rule)
    assert code == 0, err


def test_every_generated_fault_names_a_known_rule() -> None:
    from handlers.core.generate import FAULTS
    from pipeline.quarantine import unknown_rules

    labels = [f"{f.column}:{f.check}" if f.column else f.check for f in FAULTS]
    assert unknown_rules(labels) == []


# -- help and tables --------------------------------------------------------------------


def test_generate_help_explains_every_option_with_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["generate", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for needle in (
        "--count COUNT records to generate (default: 1000)",
        "(default: 0)",
        "injected fault, 0 to 1 (default: 0.0",
    ):
        assert needle in text


def test_display_width_counts_terminal_columns() -> None:
    assert display_width("abc") == 3
    assert display_width("東京") == 4  # wide CJK
    assert display_width("👍") == 2  # emoji
    assert display_width("e\u0301") == 1  # e + combining acute
    assert display_width("👩\u200d💻") == 4  # two wide emoji joined; the joiner takes none


def test_tables_stay_aligned_with_cjk_and_emoji_names() -> None:
    from decimal import Decimal

    rows = [
        ("東京タワー模型", "おもちゃ", Decimal("1.50")),
        ("Café 👍", "drinks", Decimal("2")),
        ("plain", "x", Decimal("10")),
    ]
    lines = format_table(["product_name", "category", "revenue"], rows).splitlines()
    # The numbers are right-aligned: every line ends in the same terminal column.
    assert len({display_width(line) for line in lines}) == 1, lines
    # The text column after a wide name starts in the same terminal column on every row.
    data = zip(lines[2:], rows, strict=True)
    starts = {display_width(line[: line.index(row[1])]) for line, row in data}
    assert starts == {display_width(lines[0][: lines[0].index("category")])}, lines
