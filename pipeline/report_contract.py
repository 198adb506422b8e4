"""The HTML report's contract section, rendered from the contract's structure."""

from __future__ import annotations

import re
from html import escape

from schemas import contract_spec
from schemas.columns import DERIVED_COLUMNS
from schemas.markdown import check_groups, glue_name, intro, stored_as


def contract_section(failures: dict[tuple[str | None, str], int]) -> str:
    """The contract, rendered from its structure, each check badged with its failures."""
    spec = contract_spec()
    fields = [
        (
            f.name,
            [
                _code(f.name),
                f"JSON {escape(f.json_type)}",
                _code(stored_as(f)),
                "; ".join(
                    f"{escape(label)}: " + ", ".join(_badged(f.name, n, failures) for n in names)
                    for label, names in check_groups(f)
                ),
                _inline_code(f.description),
            ],
        )
        for f in spec.fields
    ]
    records = [
        (c.name, [_badged(None, c.name, failures), _inline_code(c.description)])
        for c in spec.record_checks
    ]
    derived = [
        (c.name, [_code(c.name), _code(glue_name(c.type)), _inline_code(c.description)])
        for c in DERIVED_COLUMNS
    ]
    return (
        '<section id="contract"><h2>The contract</h2>'
        f'<p class="note">{_inline_code(intro(spec))}</p>'
        '<p class="note">Badges count the quarantined entries that broke each rule.</p>'
        + _html_table(
            "contract-table", ["field", "input type", "stored as", "checks", "description"], fields
        )
        + "<h3>Record- and file-level checks (no field)</h3>"
        + _html_table("contract-records", ["check", "description"], records)
        + "<h3>Columns the table adds to every row</h3>"
        + _html_table("contract-columns", ["column", "stored as", "description"], derived)
        + "</section>"
    )


def _html_table(table_id: str, head: list[str], rows: list[tuple[str, list[str]]]) -> str:
    """A table of rendered cells; each row carries its key as `data-key`."""
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        f'<tr data-key="{escape(key)}">{"".join(f"<td>{c}</td>" for c in cells)}</tr>'
        for key, cells in rows
    )
    return f'<table id="{table_id}"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>'


def _code(text: str) -> str:
    return f"<code>{escape(text)}</code>"


def _badged(column: str | None, check: str, failures: dict[tuple[str | None, str], int]) -> str:
    count = failures.get((column, check))
    badge = f'<span class="badge" title="quarantined entries">{count:,}</span>' if count else ""
    return f'<code data-check="{escape(check)}">{escape(check)}</code>{badge}'


_CODE = re.compile(r"`([^`]*)`")


def _inline_code(text: str) -> str:
    """A description's `code` spans as <code>, the rest escaped."""
    out, last = [], 0
    for m in _CODE.finditer(text):
        out.append(escape(text[last : m.start()]))
        out.append(f"<code>{escape(m[1])}</code>")
        last = m.end()
    out.append(escape(text[last:]))
    return "".join(out)
