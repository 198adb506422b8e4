"""The contract as Markdown: the README's contract section and `pipeline contract`."""

from __future__ import annotations

import pyarrow as arrow

from schemas.columns import DERIVED_COLUMNS
from schemas.iceberg import glue_type, iceberg_type
from schemas.transaction import STAGE_LABELS, ContractSpec, FieldContract, contract_spec

# The README holds the generated text between these lines; a test keeps it current.
START_MARKER = "<!-- contract:start -->"
END_MARKER = "<!-- contract:end -->"


def glue_name(data_type: arrow.DataType) -> str:
    """A column's type as Athena shows it: the Glue type of its Iceberg type."""
    return glue_type(iceberg_type(data_type))


def stored_as(field: FieldContract) -> str:
    """A field's type in the table, as Athena shows it."""
    return glue_name(field.stored_type)


def check_groups(field: FieldContract) -> list[tuple[str, list[str]]]:
    """(stage label, check names) of a field, in the order the checks are made."""
    groups = []
    for stage, label in STAGE_LABELS.items():
        names = [c.name for c in field.checks_at(stage)]
        if names:
            groups.append((label, names))
    return groups


def intro(spec: ContractSpec) -> str:
    """The sentence above the table."""
    return (
        f"Schema version `{spec.version}`. Extra fields are ignored. Each field's checks "
        "are listed in the order they are made: while decoding the JSON value, then by the "
        "pandera model, then across the whole file."
    )


def contract_markdown() -> str:
    """The README's contract section: fields, record-level checks, derived columns."""
    spec = contract_spec()
    lines = [
        intro(spec),
        "",
        "| field | input type | stored as | checks | description |",
        "|---|---|---|---|---|",
    ]
    for f in spec.fields:
        lines.append(
            f"| `{f.name}` | JSON {f.json_type} | `{stored_as(f)}` | {_checks(f)} "
            f"| {f.description} |"
        )
    lines += ["", "Record- and file-level checks (no field):", ""]
    lines += ["| check | description |", "|---|---|"]
    lines += [f"| `{c.name}` | {c.description} |" for c in spec.record_checks]
    lines += ["", "Columns the table adds to every row:", ""]
    lines += ["| column | stored as | description |", "|---|---|---|"]
    lines += [f"| `{c.name}` | `{glue_name(c.type)}` | {c.description} |" for c in DERIVED_COLUMNS]
    return "\n".join(lines)


def _checks(field: FieldContract) -> str:
    return "; ".join(
        f"{label}: " + ", ".join(f"`{n}`" for n in names) for label, names in check_groups(field)
    )
