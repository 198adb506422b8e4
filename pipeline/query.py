"""DuckDB over the local lake: the laptop's stand-in for Athena."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from handlers.core.errors import PipelineError

QUERIES_DIR = Path(__file__).resolve().parent.parent / "queries"


def sample_queries() -> list[Path]:
    """The sample `.sql` files, which Athena runs too (as named queries)."""
    return sorted(QUERIES_DIR.glob("*.sql"))


def connect(lake: str | Path) -> Any:
    """An in-memory DuckDB with a `transactions` view over the table's current snapshot."""
    import duckdb

    root = Path(lake).expanduser().resolve()
    con = duckdb.connect()
    files = current_data_files(root)
    if files:
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        # DDL can't take parameters; the paths are quoted as SQL literals instead.
        view = f"CREATE VIEW transactions AS SELECT * FROM read_parquet([{listed}])"  # noqa: S608
        con.execute(view)
    else:
        # An empty lake still answers queries (with no rows) instead of failing.
        import pyarrow as pa

        from schemas import output_columns

        empty = pa.schema([(c.name, c.type) for c in output_columns()]).empty_table()
        con.register("_empty_transactions", empty)
        con.execute("CREATE VIEW transactions AS SELECT * FROM _empty_transactions")
    return con


def current_data_files(root: Path) -> list[str]:
    """Paths of the data files of the table's current snapshot, as pyiceberg lists them."""
    from urllib.parse import unquote, urlparse

    from handlers.core.storage import LocalStorage
    from handlers.core.table import load_table

    table = load_table(LocalStorage(root))
    return [unquote(urlparse(t.file.file_path).path) for t in table.scan().plan_files()]


def run_sql(lake: str | Path, sql_or_file: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run SQL text, or the SQL in a file, against the lake; returns headers and rows."""
    candidate = Path(sql_or_file)
    sql = sql_or_file
    if sql_or_file.endswith(".sql") or (len(sql_or_file) < 4096 and candidate.is_file()):
        try:
            sql = candidate.read_text(encoding="utf-8")
        except OSError as e:
            raise PipelineError(f"cannot read SQL file {sql_or_file}: {e.strerror}") from e
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
    widths = [max([len(h)] + [len(r[i]) for r in text]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if numeric[i] else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in text]
    if not rows:
        out.append("(no rows)")
    return "\n".join(out)
