"""What the Iceberg table says, as the quarantine tools need it: versions, replayed ids, figures."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from handlers.core.errors import PipelineError, StorageError
from handlers.core.storage import Storage
from pipeline.quarantine.model import Problem, QuarantineRef


@dataclass
class TableState:
    """What the Iceberg table says, as the quarantine tools need it.

    `current` maps a source key id to the version token the table holds for that key:
    quarantine files of any other version of the key tell a story the table no longer
    does (superseded, or never committed), so no tool shows them. `replayed` maps each
    replayed entry id (lineage column `replayed_entry_id`) to its source key: an entry
    still in quarantine with such an id was moved by a replay that crashed before
    rewriting its file, and is counted as the row it now is.
    """

    table: Any = None
    current: dict[str, str] = field(default_factory=dict)
    replayed: dict[str, str] = field(default_factory=dict)

    def is_stale(self, ref: QuarantineRef) -> bool:
        if ref.keyid is None or ref.vtoken is None or ref.keyid not in self.current:
            return False  # foreign names, or keys the table has no record of: shown
        return ref.vtoken != self.current[ref.keyid]


def load_state(storage: Storage, problems: list[Problem]) -> TableState:
    """The table's current snapshot: versions per key and replayed entry ids."""
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    from handlers.core.commit import committed_sources
    from handlers.core.layout import key_id, version_token
    from handlers.core.table import load_table

    try:
        table = load_table(storage)
    except (NoSuchTableError, NoSuchNamespaceError) as e:
        problems.append(Problem("processed/", f"no Iceberg table: {e}"))
        return TableState()
    except PipelineError as e:
        problems.append(Problem("processed/", e.reason))
        return TableState()
    except OSError as e:  # the bucket or the lake itself is unreachable
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise StorageError("open table", "processed/", detail, transient=True) from e
    current = {key_id(key): version_token(c.version) for key, c in committed_sources(table).items()}
    replayed: dict[str, str] = {}
    if table.current_snapshot() is not None:
        from pyiceberg.expressions import NotNull

        rows = scan_rows(
            table,
            problems,
            row_filter=NotNull("replayed_entry_id"),
            selected_fields=("replayed_entry_id", "source_key"),
        )
        replayed = dict(
            zip(
                rows.column("replayed_entry_id").to_pylist(),
                rows.column("source_key").to_pylist(),
                strict=True,
            )
        )
    return TableState(table, current, replayed)


def scan_rows(table: Any, problems: list[Problem], **options: Any) -> Any:
    """The current snapshot's rows (selected columns); an unreadable file is a problem."""
    import pyarrow as pa

    try:
        return table.scan(**options).to_arrow()
    except (OSError, pa.ArrowException) as e:
        problems.append(Problem("processed/", f"table data unreadable: {str(e).splitlines()[0]}"))
        fields = options.get("selected_fields", ())
        return pa.table({name: pa.array([], pa.null()) for name in fields})


@dataclass
class TableFigures:
    """Rows of the current snapshot per partition day and source, and data file count."""

    by_day: Counter[date] = field(default_factory=Counter)
    by_source: Counter[str] = field(default_factory=Counter)
    first_ingested: dict[str, datetime] = field(default_factory=dict)
    files: int = 0


def table_figures(
    state: TableState,
    problems: list[Problem],
    since: date | None = None,
    until: date | None = None,
) -> TableFigures:
    """Count the table's rows by UTC transaction day and source, within the day range."""
    import pyarrow as pa
    import pyarrow.compute as pc

    figures = TableFigures()
    table = state.table
    if table is None or table.current_snapshot() is None:
        return figures

    def in_range(day: date) -> bool:
        return (since is None or day >= since) and (until is None or day <= until)

    for task in table.scan().plan_files():
        year, month, day = (task.file.partition[i] for i in range(3))
        figures.files += in_range(date(year, month, day))
    columns = ("year", "month", "day", "source_key", "ingested_at", "replayed_entry_id")
    rows = scan_rows(table, problems, selected_fields=columns)
    if not rows.num_rows:
        return figures
    original = pc.is_null(rows.column("replayed_entry_id"))
    rows = rows.append_column(
        "ingested",
        pc.if_else(
            original,
            rows.column("ingested_at"),
            pa.scalar(None, rows.schema.field("ingested_at").type),
        ),
    )
    grouped = rows.group_by(["year", "month", "day", "source_key"]).aggregate(
        [("source_key", "count"), ("ingested", "min")]
    )
    for year, month, day, source, n, first in zip(
        *(grouped.column(c).to_pylist() for c in ("year", "month", "day", "source_key")),
        grouped.column("source_key_count").to_pylist(),
        grouped.column("ingested_min").to_pylist(),
        strict=True,
    ):
        when = date(year, month, day)
        if not in_range(when):
            continue
        figures.by_day[when] += n
        figures.by_source[source] += n
        if first is not None:
            first = first.astimezone(UTC)
            known = figures.first_ingested.get(source)
            figures.first_ingested[source] = min(known, first) if known else first
    return figures
