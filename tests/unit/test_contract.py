"""The contract is one structure: every rendering of it, and the rule names, agree."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.core.generate import FAULTS
from handlers.core.instants import InstantCache
from pipeline.cli import main
from pipeline.report_contract import contract_section
from schemas import contract_spec, known_rules, parse_instants
from schemas.columns import DERIVED_COLUMNS
from schemas.markdown import END_MARKER, START_MARKER, contract_markdown
from schemas.transaction import DECODE, FILE, PANDERA, RECORD

ROOT = Path(__file__).resolve().parents[2]

Rendering = dict[str, dict[str, list[str]]]  # table -> row key -> check names (or cells)


def _markdown_tables(text: str) -> Rendering:
    """The test's own reading of the Markdown: field -> checks, record check, column."""
    tables: Rendering = {"fields": {}, "records": {}, "columns": {}}
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        key = cells[0].strip("`")
        if len(cells) == 5:
            tables["fields"][key] = cells[3].split("`")[1::2]
        elif len(cells) == 2:
            tables["records"][key] = [key]
        else:
            tables["columns"][key] = [cells[1].strip("`")]
    return tables


class _ReportTables(HTMLParser):
    """Rows of the report's contract tables: each row's key and the checks it names."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: Rendering = {}
        self._table = ""
        self._row = ""
        self._in_code = False
        self._cell = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table":
            self._table = {"contract-table": "fields", "contract-records": "records"}.get(
                str(found.get("id")), "columns"
            )
            self.tables[self._table] = {}
        elif tag == "tr" and "data-key" in found:
            self._row = str(found["data-key"])
            self.tables[self._table][self._row] = []
            self._cell = 0
        elif tag == "td":
            self._cell += 1
        elif tag == "code" and self._row and "data-check" in found:
            self.tables[self._table][self._row].append(str(found["data-check"]))
        elif tag == "code" and self._table == "columns" and self._cell == 2:
            self._in_code = True

    def handle_data(self, data: str) -> None:
        if self._in_code:
            self.tables[self._table][self._row].append(data)
            self._in_code = False


def _from_structure() -> Rendering:
    from schemas.markdown import glue_name

    spec = contract_spec()
    return {
        "fields": {f.name: [c.name for c in f.checks] for f in spec.fields},
        "records": {c.name: [c.name] for c in spec.record_checks},
        "columns": {c.name: [glue_name(c.type)] for c in DERIVED_COLUMNS},
    }


def _readme_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = text.index(START_MARKER), text.index(END_MARKER)
    return text[start + len(START_MARKER) : end].strip("\n")


def test_readme_section_is_the_generated_one() -> None:
    assert _readme_section() == contract_markdown(), "README contract is stale: make contract"


def test_readme_command_and_report_show_the_same_rows_and_checks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["contract"]) == 0
    printed = _markdown_tables(capsys.readouterr().out)
    readme = _markdown_tables(_readme_section())
    page = _ReportTables()
    page.feed(contract_section({}))
    expected = _from_structure()
    assert readme == expected
    assert printed == expected
    assert page.tables == expected
    assert list(expected["fields"]) == [f.name for f in contract_spec().fields]


def test_report_badges_count_failures_per_field_and_record_check() -> None:
    html = contract_section({("price", "decimal_places(2)"): 1234, (None, "gzip"): 2})
    assert (
        '<code data-check="decimal_places(2)">decimal_places(2)</code><span class="badge"' in html
    )
    assert ">1,234</span>" in html and ">2</span>" in html
    assert html.count('class="badge"') == 2


def test_every_check_has_a_stage_and_record_checks_have_descriptions() -> None:
    spec = contract_spec()
    for f in spec.fields:
        stages = [c.stage for c in f.checks]
        assert stages == sorted(stages, key=[DECODE, PANDERA, FILE].index), f.name
        assert stages[0] == DECODE and f.checks[0].name == f"type({f.json_type})"
        assert f.description
    assert all(c.stage == RECORD and c.description for c in spec.record_checks)
    assert spec.field("transaction_id").checks_at(FILE)[0].name == "unique_within_file"
    assert [c.name for c in spec.field("timestamp").checks_at(PANDERA)][-1].startswith("not_after")
    assert "total_amount_equals_quantity_times_price" in [
        c.name for c in spec.field("total_amount").checks_at(PANDERA)
    ]


def test_known_rules_are_the_structure_and_cover_every_fault() -> None:
    rules = known_rules()
    assert len(rules) == len(set(rules))
    spec = contract_spec()
    assert set(rules) == {(None, c.name) for c in spec.record_checks} | {
        (f.name, c.name) for f in spec.fields for c in f.checks
    }
    for fault in FAULTS:  # a fault names its check by prefix: `str_length`, `iso8601`
        assert any(c == fault.column and n.startswith(fault.check) for c, n in rules), fault


def test_stored_types_feed_the_iceberg_schema() -> None:
    from schemas.columns import output_columns
    from schemas.iceberg import iceberg_schema, iceberg_type

    schema = iceberg_schema()
    assert [f.name for f in schema.fields] == [c.name for c in output_columns()]
    for f in contract_spec().fields:
        assert schema.find_field(f.name).field_type == iceberg_type(f.stored_type)
        assert schema.find_field(f.name).doc == f.description


# --------------------------------------------------------------------------- instants

_COLUMN = pa.chunked_array(
    [["2026-01-01T00:00:00Z", None, "2026-02-30T00:00:00Z"], ["2026-01-02T03:04:05+01:00", None]]
)


@pytest.mark.parametrize("ahead", [False, True])
def test_instant_cache_answers_exactly_as_parsing(ahead: bool) -> None:
    cache = InstantCache()
    cache.hold(_COLUMN, parse_instants(_COLUMN) if ahead else None)
    assert cache.parsed.equals(parse_instants(_COLUMN))
    for values in (
        _COLUMN,  # the column itself
        _COLUMN.drop_null(),  # pandera's view: without its nulls
        pa.array(["2026-03-01T00:00:00Z"]),  # anything else is parsed
        pa.array(
            ["2026-01-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-01-02T03:04:05+01:00"][::-1]
        ),
    ):
        assert cache.parse(values).equals(parse_instants(values))


def test_instant_cache_is_what_the_checks_use_only_while_checking() -> None:
    from schemas.instants import instant_parser

    cache = InstantCache()
    cache.hold(_COLUMN)
    assert instant_parser() is parse_instants
    with cache.checking():
        assert instant_parser() == cache.parse
    assert instant_parser() is parse_instants


_TEXTS = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "2026-01-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-01-02T03:04:05+01:00",
            "1999-12-31T23:59:59Z",
            "9999-12-31T23:00:00-05:00",
            "not a time",
            "",
        ]
    ),
)


@given(column=st.lists(_TEXTS, max_size=40), other=st.lists(_TEXTS, max_size=10))
def test_instant_cache_never_answers_for_another_column(
    column: list[str | None], other: list[str | None]
) -> None:
    held = pa.array(column, pa.string())
    cache = InstantCache()
    cache.hold(held)
    for values in (held, held.drop_null(), pa.array(other, pa.string())):
        assert cache.parse(values).equals(parse_instants(values))
    assert cache.parsed.equals(parse_instants(held))
