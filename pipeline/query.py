"""DuckDB over the local lake: the laptop's stand-in for Athena."""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from handlers.core.errors import PipelineError, UsageError

QUERIES_DIR = Path(__file__).resolve().parent.parent / "queries"


def sample_queries() -> list[Path]:
    """The sample `.sql` files, which Athena runs too (as named queries)."""
    return sorted(QUERIES_DIR.glob("*.sql"))


def current_data_files(lake: str | Path) -> list[str]:
    """Local paths of the data files the table's current snapshot lists, as pyiceberg plans
    them; none for a lake without a table or a table without a snapshot."""
    from urllib.parse import unquote, urlparse

    from handlers.core.storage import LocalStorage
    from handlers.core.table import CATALOG_DB, ensure_current_layout, load_table

    storage = LocalStorage(Path(lake).expanduser().resolve())
    ensure_current_layout(storage)
    if not (storage.root / CATALOG_DB).is_file():
        return []  # nothing was ever written: no catalog to open (and none to create)
    from pyiceberg.exceptions import NoSuchTableError

    try:
        table = load_table(storage, create=False)
    except NoSuchTableError:
        return []
    paths = []
    for task in table.scan().plan_files():
        uri = urlparse(task.file.file_path)
        paths.append(unquote(uri.path) if uri.scheme == "file" else task.file.file_path)
    return paths


def connect(lake: str | Path) -> Any:
    """An in-memory DuckDB with a `transactions` view over exactly the table's current
    snapshot: its data files, listed by pyiceberg (no directory globbing)."""
    import duckdb

    from schemas.iceberg import iceberg_arrow_schema

    con = duckdb.connect()
    files = current_data_files(lake)
    if files:
        # Files the snapshot no longer lists stay on disk until maintenance removes them;
        # reading only the listed ones is what makes a query see one consistent snapshot.
        con.read_parquet(files, hive_partitioning=False).create_view("transactions")
    else:
        # An empty table still answers queries (with no rows and the right columns).
        con.register("_empty_transactions", iceberg_arrow_schema().empty_table())
        con.execute("CREATE VIEW transactions AS SELECT * FROM _empty_transactions")
    return con


_EXAMPLE = "SELECT COUNT(*) FROM transactions"
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?(\*/|$)", re.DOTALL)


def require_statement(sql: str, source: str) -> None:
    """Refuse SQL with nothing to run (blank, only comments or `;`): DuckDB returns no cursor."""
    # Removing comment-like text can only shorten a real statement, never empty it.
    if not _COMMENTS.sub("", sql).replace(";", "").strip():
        raise UsageError(f"no SQL statement in {source}: pass a query such as {_EXAMPLE!r}")


def run_sql(lake: str | Path, sql_or_file: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run SQL text, or the SQL in a file, against the lake; returns headers and rows."""
    candidate = Path(sql_or_file)
    sql = sql_or_file
    if sql_or_file.endswith(".sql") or (len(sql_or_file) < 4096 and candidate.is_file()):
        try:
            sql = candidate.read_text(encoding="utf-8")
        except OSError as e:
            raise PipelineError(f"cannot read SQL file {sql_or_file}: {e.strerror}") from e
    require_statement(sql, sql_or_file if sql is not sql_or_file else "the query text")
    import duckdb

    con = connect(lake)
    try:
        cursor = con.execute(sql)
    except duckdb.Error as e:
        raise PipelineError(f"query failed: {str(e).splitlines()[0]}") from e
    headers = [d[0] for d in cursor.description or []]
    return headers, cursor.fetchall()


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table; numbers right-aligned, money with its cents."""

    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, Decimal):
            return f"{value:,.2f}"
        if isinstance(value, float):
            return f"{value:,.4f}"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}" if abs(value) >= 10_000 else str(value)
        return str(value)

    text = [[cell(v) for v in row] for row in rows]
    numeric = [
        all(isinstance(r[i], int | float | Decimal) or r[i] is None for r in rows) and bool(rows)
        for i in range(len(headers))
    ]
    widths = [
        max([display_width(h)] + [display_width(r[i]) for r in text]) for i, h in enumerate(headers)
    ]

    def line(values: Sequence[str]) -> str:
        cells = zip(values, widths, strict=True)
        return "  ".join(_pad(v, w, right=numeric[i]) for i, (v, w) in enumerate(cells)).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in text]
    if not rows:
        out.append("(no rows)")
    return "\n".join(out)


_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\ufe0e\ufe0f")


def display_width(text: str) -> int:
    """Terminal columns `text` takes: CJK and emoji take two, combining marks none."""
    import unicodedata

    width = 0
    for c in text:
        if c in _ZERO_WIDTH or unicodedata.combining(c):
            continue
        width += 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1
    return width


def _pad(text: str, width: int, *, right: bool) -> str:
    fill = " " * max(0, width - display_width(text))
    return fill + text if right else text + fill
