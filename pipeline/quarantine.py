"""Quarantine review on any Storage: select, summarise, export, replay and purge entries."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import IO, Any

import orjson

from handlers.core.entries import decode_exact, jsonable, original_bytes
from handlers.core.errors import ObjectNotFound, PipelineError, StorageError
from handlers.core.storage import QUARANTINE_PREFIX, Storage

# Names the transformer (and replay) writes; anything else under the prefixes is foreign.
_QUARANTINE_KEY = re.compile(r"^quarantine/dt=(?P<day>\d{4}-\d{2}-\d{2})/(?P<name>[^/]+)\.jsonl$")
# <stem>.<key id>.<version token>.c<chunk>[.<tag>] — see handlers.core.layout.
_OUTPUT_NAME = re.compile(
    r"^(?P<base>.+\.(?P<keyid>[0-9a-f]{12})\.(?P<vtoken>[0-9a-f]{10}))"
    r"\.c(?P<chunk>\d{5})(?:\.(?P<tag>[A-Za-z0-9_-]+))?$"
)

UNREPLAYABLE_CHECKS = frozenset({"gzip"})  # the bytes past a broken gzip stream are gone
_WORKERS = 8
_REQUIRED = ("entry_id", "record", "errors", "source_key", "source_version")


def rule_label(column: str | None, check: str) -> str:
    """`column:check`, or just the check for record-level failures (same as the transformer)."""
    return f"{column}:{check}" if column else str(check)


def entry_rules(entry: dict[str, Any]) -> list[str]:
    """Distinct rule labels an entry breaks, in the order they were reported."""
    labels = [rule_label(e.get("column"), e.get("check", "?")) for e in entry.get("errors", [])]
    return list(dict.fromkeys(labels))


def value_text(value: Any, limit: int = 120) -> str:
    """A failing value as JSON text (so "10.00" and 10.00 stay distinct), shortened."""
    text = orjson.dumps(jsonable(value)).decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Selection:
    """Which entries a command works on. Days are landing days (`dt=`), inclusive."""

    since: date | None = None
    until: date | None = None
    rules: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    entry_ids: frozenset[str] = frozenset()

    def day_in_range(self, day: date) -> bool:
        return (self.since is None or day >= self.since) and (
            self.until is None or day <= self.until
        )

    def matches(self, entry: dict[str, Any]) -> bool:
        if self.entry_ids and entry.get("entry_id") not in self.entry_ids:
            return False
        if self.sources and not any(_source_matches(p, entry) for p in self.sources):
            return False
        if self.rules:
            errors = entry.get("errors") or []
            return any(_rule_matches(r, e) for r in self.rules for e in errors)
        return True


def _source_matches(pattern: str, entry: dict[str, Any]) -> bool:
    from fnmatch import fnmatchcase

    source = str(entry.get("source_key", ""))
    return source == pattern or fnmatchcase(source, pattern)


def _rule_matches(rule: str, error: dict[str, Any]) -> bool:
    """`price`, `type(number)`, `price:type(number)` and `price:type` all select that failure."""
    column, check = error.get("column"), str(error.get("check", ""))
    label = rule_label(column, check)
    return rule in (label, column, check) or label.startswith(rule)


def unknown_rules(rules: Sequence[str]) -> list[str]:
    """The `--rule` values that select no rule of the contract (so never any entry)."""
    from schemas.transaction import known_rules

    known = [{"column": column, "check": check} for column, check in known_rules()]
    return [r for r in rules if not any(_rule_matches(r, error) for error in known)]


def known_rule_labels() -> list[str]:
    """Every rule label the contract defines, as `summary` prints them."""
    from schemas.transaction import known_rules

    return [rule_label(column, check) for column, check in known_rules()]


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """Something in the lake that could not be used. Errors mean figures may be incomplete."""

    key: str
    detail: str
    severity: str = "error"  # "error": data unreadable; "warning": a foreign object, ignored

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "severity": self.severity, "detail": self.detail}

    def __str__(self) -> str:
        return f"{self.severity}: {self.key}: {self.detail}"


# --------------------------------------------------------------------------- reading


@dataclass
class Item:
    """One line of a quarantine file: the entry, or None when the line is unreadable."""

    line_no: int
    raw: bytes
    entry: dict[str, Any] | None


@dataclass
class QuarantineFile:
    """A quarantine object as read: its lines in order, and what its name says."""

    key: str
    day: date
    items: list[Item]
    base: str | None = None  # <stem>.<keyid>.<vtoken>, when the name follows the layout
    keyid: str | None = None
    chunk: int = 0
    tag: str = ""

    @property
    def entries(self) -> list[dict[str, Any]]:
        return [i.entry for i in self.items if i.entry is not None]


@dataclass(frozen=True)
class QuarantineRef:
    """A quarantine object found by listing, before it is read."""

    key: str
    day: date
    base: str | None
    keyid: str | None
    chunk: int
    tag: str


def parse_quarantine_key(key: str) -> QuarantineRef | None:
    """What a quarantine key says (day, source key id, chunk), or None if it is foreign."""
    m = _QUARANTINE_KEY.match(key)
    if not m:
        return None
    try:
        day = date.fromisoformat(m["day"])
    except ValueError:
        return None
    name = _OUTPUT_NAME.match(m["name"])
    if name:
        return QuarantineRef(
            key, day, name["base"], name["keyid"], int(name["chunk"]), name["tag"] or ""
        )
    return QuarantineRef(key, day, None, None, 0, "")


def list_quarantine(
    storage: Storage,
    selection: Selection,
    problems: list[Problem],
    state: TableState | None = None,
) -> list[QuarantineRef]:
    """Quarantine objects whose landing day is selected, in key order; foreign objects noted.

    With the table's `state`, files of versions the table does not hold are left out.
    """
    refs = []
    for info in storage.list(QUARANTINE_PREFIX):
        ref = parse_quarantine_key(info.key)
        if ref is None:
            problems.append(
                Problem(
                    info.key,
                    "not a quarantine file (expected dt=YYYY-MM-DD/*.jsonl); ignored",
                    "warning",
                )
            )
            continue
        if selection.day_in_range(ref.day) and not (state and state.is_stale(ref)):
            refs.append(ref)
    return refs


def parse_quarantine(ref: QuarantineRef, data: bytes, problems: list[Problem]) -> QuarantineFile:
    """Entries of a quarantine object; unreadable lines are kept (verbatim) and reported."""
    items: list[Item] = []
    bad = 0
    for n, line in enumerate(data.split(b"\n"), 1):
        raw = line.rstrip(b"\r")
        if not raw.strip():
            continue
        entry, reason = _read_line(raw)
        if reason:
            bad += 1
            if bad <= 3:
                problems.append(Problem(ref.key, f"line {n}: {reason}"))
        items.append(Item(n, raw, entry))
    if bad > 3:
        problems.append(Problem(ref.key, f"{bad - 3} more unreadable lines"))
    return QuarantineFile(ref.key, ref.day, items, ref.base, ref.keyid, ref.chunk, ref.tag)


def _read_line(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    """(entry, "") for a good line, else (None, why it is not an entry)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    try:
        value = decode_exact(text)
    except (ValueError, RecursionError):
        return None, "not JSON (truncated or garbled)"
    if not _is_entry(value):
        return None, f"JSON but not a quarantine entry (needs {', '.join(_REQUIRED)})"
    return value, ""


def _is_entry(value: Any) -> bool:
    if not isinstance(value, dict) or any(k not in value for k in _REQUIRED):
        return False
    if not isinstance(value["entry_id"], str) or not isinstance(value["errors"], list):
        return False
    if not all(isinstance(e, dict) and "check" in e for e in value["errors"]):
        return False
    return isinstance(value["source_key"], str) and isinstance(value["source_version"], str)


def _why(error: PipelineError) -> str:
    """An error's detail without repeating the key the problem is filed under."""
    if isinstance(error, StorageError):
        return f"{error.operation} failed: {error.detail}"
    return error.reason


def _fetch(
    storage: Storage, keys: list[str], read: Callable[[str], Any], workers: int = _WORKERS
) -> Iterator[tuple[str, Any | PipelineError]]:
    """(key, read(key) or the error) in key order, reading a bounded window in parallel."""
    if not keys:
        return

    def guarded(key: str) -> Any:
        try:
            return read(key)
        except PipelineError as e:
            return e

    # A boto3 client is thread-safe, creating one is not: build it before sharing it.
    getattr(storage, "client", None)
    window = workers * 4
    with ThreadPoolExecutor(max_workers=min(workers, len(keys))) as pool:
        for start in range(0, len(keys), window):
            part = keys[start : start + window]
            yield from zip(part, pool.map(guarded, part), strict=True)


def read_quarantine(
    storage: Storage, refs: list[QuarantineRef], problems: list[Problem]
) -> Iterator[QuarantineFile]:
    """Parsed quarantine files, in the order of `refs`; unreadable objects reported, skipped."""
    by_key = {r.key: r for r in refs}
    for key, data in _fetch(storage, list(by_key), storage.read_bytes):
        if isinstance(data, ObjectNotFound):
            continue  # removed since listing (a concurrent replay or purge)
        if isinstance(data, PipelineError):
            problems.append(Problem(key, _why(data)))
            continue
        yield parse_quarantine(by_key[key], data, problems)


def select_entries(
    storage: Storage, selection: Selection, problems: list[Problem]
) -> Iterator[tuple[QuarantineFile, Item]]:
    """Selected entries of current versions still in quarantine (replayed ones excluded)."""
    state = load_state(storage, problems)
    moved = state.replayed
    copies = _Copies()
    refs = list_quarantine(storage, selection, problems, state)
    for qfile in read_quarantine(storage, refs, problems):
        for item in qfile.items:
            entry = item.entry
            if entry is None or entry["entry_id"] in moved or not selection.matches(entry):
                continue
            if copies.first(qfile, entry):
                yield qfile, item
    problems.extend(copies.problems())


class _Copies:
    """Which file holds each entry id first; a copy in another file is counted once."""

    def __init__(self) -> None:
        self.owner: dict[str, str] = {}
        self.copies: Counter[tuple[str, str]] = Counter()

    def first(self, qfile: QuarantineFile, entry: dict[str, Any]) -> bool:
        owner = self.owner.setdefault(entry["entry_id"], qfile.key)
        if owner != qfile.key:
            self.copies[(qfile.key, owner)] += 1
        return owner == qfile.key

    def problems(self) -> list[Problem]:
        return [
            Problem(key, f"{n} entries are copies of entries in {owner}; counted once")
            for (key, owner), n in sorted(self.copies.items())
        ]


# --------------------------------------------------------------------------- the table


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
        if ref.keyid is None or ref.base is None or ref.keyid not in self.current:
            return False  # foreign names, or keys the table has no record of: shown
        return ref.base.rsplit(".", 1)[-1] != self.current[ref.keyid]


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

        rows = _scan(
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


def _scan(table: Any, problems: list[Problem], **options: Any) -> Any:
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
    rows = _scan(table, problems, selected_fields=columns)
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


# --------------------------------------------------------------------------- summary


@dataclass
class Summary:
    """Figures of the quarantine against `processed/`; `to_dict()` is `summary --json`."""

    lake: str
    since: date | None
    until: date | None
    processed_by_day: Counter[date] = field(default_factory=Counter)
    quarantined_by_day: Counter[date] = field(default_factory=Counter)
    by_rule: Counter[str] = field(default_factory=Counter)
    rule_parts: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    by_source_processed: Counter[str] = field(default_factory=Counter)
    by_source_quarantined: Counter[str] = field(default_factory=Counter)
    source_time: dict[str, datetime] = field(default_factory=dict)
    values: Counter[tuple[str, str]] = field(default_factory=Counter)
    samples: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    pending: int = 0  # entries still in quarantine whose replay output exists
    quarantine_files: int = 0
    processed_files: int = 0
    problems: list[Problem] = field(default_factory=list)
    top: int = 10
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def processed(self) -> int:
        return sum(self.processed_by_day.values())

    @property
    def quarantined(self) -> int:
        return sum(self.quarantined_by_day.values())

    def to_dict(self) -> dict[str, Any]:
        processed, quarantined = self.processed, self.quarantined
        days = sorted(set(self.processed_by_day) | set(self.quarantined_by_day))
        sources = sorted(set(self.by_source_processed) | set(self.by_source_quarantined))
        return {
            "lake": self.lake,
            "generated_at": _iso(self.generated_at),
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "day_basis": {
                "processed": "UTC day of the transaction (processed/ partition)",
                "quarantined": "UTC day the raw object landed (quarantine/dt=)",
            },
            "totals": {
                "records": processed + quarantined,
                "processed": processed,
                "quarantined": quarantined,
                "quarantine_rate": _rate(quarantined, processed + quarantined),
                "processed_files": self.processed_files,
                "quarantine_files": self.quarantine_files,
                "sources": len(sources),
                "pending_reconciliation": self.pending,
            },
            "by_day": [
                _counts(
                    {"day": d.isoformat()}, self.processed_by_day[d], self.quarantined_by_day[d]
                )
                for d in days
            ],
            "by_rule": [
                {
                    "rule": rule,
                    "column": self.rule_parts[rule][0],
                    "check": self.rule_parts[rule][1],
                    "entries": n,
                    "share_of_quarantined": _rate(n, quarantined),
                }
                for rule, n in sorted(self.by_rule.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            "by_source": [
                _counts(
                    {
                        "source_key": s,
                        "transformed_at": _iso(self.source_time[s])
                        if s in self.source_time
                        else None,
                    },
                    self.by_source_processed[s],
                    self.by_source_quarantined[s],
                )
                for s in sources
            ],
            "top_values": [
                {"rule": rule, "value": value, "count": n}
                for (rule, value), n in sorted(self.values.items(), key=lambda kv: (-kv[1], kv[0]))[
                    : self.top
                ]
            ],
            "problems": [p.to_dict() for p in self.problems],
        }


def _counts(head: dict[str, Any], processed: int, quarantined: int) -> dict[str, Any]:
    return head | {
        "processed": processed,
        "quarantined": quarantined,
        "records": processed + quarantined,
        "quarantine_rate": _rate(quarantined, processed + quarantined),
    }


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_instant(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value.replace(tzinfo=value.tzinfo or UTC).astimezone(UTC)


def summarise(
    storage: Storage,
    since: date | None = None,
    until: date | None = None,
    *,
    top: int = 10,
    samples_per_rule: int = 0,
) -> Summary:
    """Count the table's rows and quarantine entries per day, rule and source."""
    summary = Summary(lake=storage.url, since=since, until=until, top=top)
    problems = summary.problems
    state = load_state(storage, problems)
    moved = state.replayed
    figures = table_figures(state, problems, since, until)
    summary.processed_files = figures.files
    summary.processed_by_day.update(figures.by_day)
    summary.by_source_processed.update(figures.by_source)
    summary.source_time.update(figures.first_ingested)
    selection = Selection(since=since, until=until)
    refs = list_quarantine(storage, selection, problems, state)
    copies = _Copies()
    for qfile in read_quarantine(storage, refs, problems):
        summary.quarantine_files += 1
        for entry in qfile.entries:
            if entry["entry_id"] in moved:
                summary.pending += 1  # already a processed row: counted there
                continue
            if copies.first(qfile, entry):
                _count_entry(summary, qfile, entry, samples_per_rule)
    problems.extend(copies.problems())
    return summary


def _count_entry(
    summary: Summary, qfile: QuarantineFile, entry: dict[str, Any], samples_per_rule: int
) -> None:
    summary.quarantined_by_day[qfile.day] += 1
    source = entry["source_key"]
    summary.by_source_quarantined[source] += 1
    at = _parse_instant(entry.get("quarantined_at"))
    if at and (source not in summary.source_time or at < summary.source_time[source]):
        summary.source_time[source] = at
    seen_rules: set[str] = set()
    for error in entry["errors"]:
        rule = rule_label(error.get("column"), str(error.get("check")))
        summary.values[(rule, value_text(error.get("value")))] += 1
        if rule in seen_rules:
            continue
        seen_rules.add(rule)
        summary.by_rule[rule] += 1
        summary.rule_parts[rule] = (error.get("column"), str(error.get("check")))
        if samples_per_rule:
            bucket = summary.samples.setdefault(rule, [])
            if len(bucket) < samples_per_rule:
                bucket.append((qfile.key, entry))


# --------------------------------------------------------------------------- export


EXPORT_FIELDS = (
    "entry_id",
    "landed_day",
    "rules",
    "errors",
    "source_key",
    "source_version",
    "line",
    "record_index",
    "quarantined_at",
    "schema_version",
    "record_is_raw_text",
    "record",
    "quarantine_key",
)


def export_row(qfile: QuarantineFile, item: Item) -> dict[str, Any]:
    """A flat row for CSV: one column per entry field, plus the record's contract fields."""
    from schemas import FIELDS

    entry = item.entry
    assert entry is not None
    record = entry.get("record")
    row: dict[str, Any] = {
        "entry_id": entry["entry_id"],
        "landed_day": qfile.day.isoformat(),
        "rules": "; ".join(entry_rules(entry)),
        "errors": orjson.dumps(jsonable(entry["errors"])).decode(),
        "source_key": entry["source_key"],
        "source_version": entry["source_version"],
        "line": entry.get("line"),
        "record_index": entry.get("record_index"),
        "quarantined_at": entry.get("quarantined_at"),
        "schema_version": entry.get("schema_version"),
        "record_is_raw_text": bool(entry.get("record_is_raw_text")),
        "record": record if isinstance(record, str) else record_text(entry, item.raw).decode(),
        "quarantine_key": qfile.key,
    }
    for name in FIELDS:
        value = record.get(name) if isinstance(record, dict) else None
        row[f"record.{name}"] = _cell(value)
    return row


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    return orjson.dumps(jsonable(value)).decode()


def export_json_line(qfile: QuarantineFile, item: Item) -> bytes:
    """The entry as stored (record verbatim), plus where it is: one JSON line."""
    entry = item.entry
    assert entry is not None
    out = jsonable(dict(entry))
    if not entry.get("record_is_raw_text"):
        out["record"] = orjson.Fragment(record_text(entry, item.raw))
    out["quarantine_key"] = qfile.key
    out["landed_day"] = qfile.day.isoformat()
    return orjson.dumps(out) + b"\n"


def record_text(entry: dict[str, Any], raw_line: bytes | None = None) -> bytes:
    """The record's original text: verbatim from the stored line when possible, else rebuilt
    (exact values, same key order); raw-text records give back their raw bytes."""
    if raw_line is not None and not entry.get("record_is_raw_text"):
        span = _record_span(raw_line, entry)
        if span is not None:
            return span
    return original_bytes(entry)


# --------------------------------------------------------------------------- rewriting


def _record_span(raw: bytes, entry: dict[str, Any]) -> bytes | None:
    """The verbatim text of `record` inside a stored line (entries start with entry_id)."""
    if entry.get("record_is_raw_text"):
        return None
    prefix = b'{"entry_id":' + orjson.dumps(entry["entry_id"]) + b',"record":'
    if not raw.startswith(prefix):
        return None
    try:
        text = raw.decode("utf-8")
        start = len(prefix.decode("utf-8"))
        _value, end = json.JSONDecoder().raw_decode(text, start)
    except ValueError:
        return None
    return text[start:end].encode("utf-8")


def _dump_entry(item: Item) -> bytes:
    """A changed entry as one line; the record keeps its original text where known."""
    entry = item.entry
    assert entry is not None
    span = _record_span(item.raw, entry)
    out = jsonable(entry)
    if span is not None:
        out["record"] = orjson.Fragment(span)
    return orjson.dumps(out)


def _canonical_errors(errors: Iterable[dict[str, Any]]) -> list[bytes]:
    return sorted(
        orjson.dumps(
            {"column": e.get("column"), "check": e.get("check"), "value": jsonable(e.get("value"))},
            option=orjson.OPT_SORT_KEYS,
        )
        for e in errors
    )


# --------------------------------------------------------------------------- replay


@dataclass
class FileOutcome:
    """What replay did (or would do) to one quarantine file."""

    key: str
    moved: list[str] = field(default_factory=list)
    reconciled: list[str] = field(default_factory=list)
    still_failing: int = 0
    errors_changed: int = 0
    outputs: list[str] = field(default_factory=list)
    deleted: bool = False
    rewritten: bool = False


@dataclass
class ReplayResult:
    """Counts of one replay run; `moved + still_failing + skipped = selected`."""

    dry_run: bool
    reference: str
    files: int = 0
    selected: int = 0
    moved: int = 0
    still_failing: int = 0
    errors_changed: int = 0
    reconciled: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    moved_by_rule: Counter[str] = field(default_factory=Counter)
    failing_by_rule: Counter[str] = field(default_factory=Counter)
    outcomes: list[FileOutcome] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def outputs(self) -> list[str]:
        return [k for o in self.outcomes for k in o.outputs]

    @property
    def changed_anything(self) -> bool:
        return any(o.moved or o.reconciled or o.rewritten or o.deleted for o in self.outcomes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "reference_time": self.reference,
            "files": self.files,
            "selected": self.selected,
            "moved": self.moved,
            "still_failing": self.still_failing,
            "errors_changed": self.errors_changed,
            "reconciled": self.reconciled,
            "skipped": dict(sorted(self.skipped.items())),
            "moved_by_rule": dict(sorted(self.moved_by_rule.items())),
            "failing_by_rule": dict(sorted(self.failing_by_rule.items())),
            "processed_outputs": self.outputs,
            "files_changed": [
                {
                    "quarantine_key": o.key,
                    "moved": len(o.moved),
                    "reconciled": len(o.reconciled),
                    "errors_changed": o.errors_changed,
                    "still_failing": o.still_failing,
                    "outputs": o.outputs,
                    "quarantine_file": "deleted"
                    if o.deleted
                    else ("rewritten" if o.rewritten else "unchanged"),
                }
                for o in self.outcomes
                if o.moved or o.reconciled or o.errors_changed or o.deleted
            ],
            "problems": [p.to_dict() for p in self.problems],
            "seconds": round(self.seconds, 3),
        }


ReferenceTime = str | datetime  # "landed", "now" or a fixed instant
Progress = Callable[[int, int, FileOutcome], None]


def replay(
    storage: Storage,
    selection: Selection = Selection(),  # frozen: a shared default is safe
    *,
    reference: ReferenceTime = "landed",
    dry_run: bool = False,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> ReplayResult:
    """Re-validate selected entries against the current contract; move those that pass.

    Per quarantine file: the passing records' data files are written and committed to
    the table in one commit (only while the entries' version is the one the table holds),
    then the quarantine file is rewritten without the moved entries (or deleted when
    empty). A crash in between leaves entries in both places; the rows carry their entry
    ids (`replayed_entry_id`), so the tools count them once and the next replay removes
    them from quarantine.
    """
    import time

    started = time.perf_counter()
    now = now or datetime.now(UTC)
    label = reference if isinstance(reference, str) else _iso(reference)
    result = ReplayResult(dry_run=dry_run, reference=label)
    state = load_state(storage, result.problems)
    moved_ids = state.replayed
    refs = list_quarantine(storage, selection, result.problems, state)
    result.files = len(refs)
    groups: dict[str, list[QuarantineRef]] = defaultdict(list)
    for ref in refs:
        if ref.keyid is None:
            result.problems.append(
                Problem(
                    ref.key,
                    "name does not follow the layout (no source key id); skipped",
                    "warning",
                )
            )
            continue
        groups[ref.keyid].append(ref)
    done = 0
    copies = _Copies()
    for keyid in sorted(groups):
        source = _SourceReplay(storage, keyid, selection, reference, now, dry_run, result)
        for qfile in read_quarantine(storage, groups[keyid], result.problems):
            outcome = FileOutcome(qfile.key)
            try:
                source.replay_file(qfile, moved_ids, copies, outcome)
                if not dry_run:
                    # Rows now: a copy of one in a later file is removed like a leftover.
                    moved_ids.update(dict.fromkeys(outcome.moved, source.source_key))
            except PipelineError as e:
                # The file is consistent (write first, remove second); later files of
                # this source are left alone since the duplicate check saw claims that
                # may not have been written.
                result.problems.append(Problem(qfile.key, e.reason))
                source.broken = e.reason
            result.outcomes.append(outcome)
            done += 1
            if progress:
                progress(done, len(refs), outcome)
    result.problems.extend(copies.problems())
    result.seconds = time.perf_counter() - started
    return result


class _SourceReplay:
    """Replay state for the quarantine files of one source object."""

    def __init__(
        self,
        storage: Storage,
        keyid: str,
        selection: Selection,
        reference: ReferenceTime,
        now: datetime,
        dry_run: bool,
        result: ReplayResult,
    ) -> None:
        self.storage = storage
        self.keyid = keyid
        self.selection = selection
        self.reference = reference
        self.now = now
        self.dry_run = dry_run
        self.result = result
        self.source_key = ""
        self.version: str | None = None  # the version the table holds for the source
        self.problem = ""
        self.seen: Any = None  # SeenIds over this source's rows in the table, built on demand
        self.landed: dict[str, datetime] = {}
        self.broken = ""

    def _load(self, source_key: str) -> None:
        """The source's version in the table, read once (from the first entry's key)."""
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

        from handlers.core.commit import committed_version
        from handlers.core.table import load_table

        self.source_key = source_key
        try:
            committed = committed_version(load_table(self.storage), source_key)
        except (NoSuchTableError, NoSuchNamespaceError):
            committed = None
        except PipelineError as e:
            self.result.problems.append(Problem(source_key, e.reason))
            self.problem = "the table could not be read"
            return
        if committed is None:
            self.problem = "source not committed to the table (cannot check duplicates)"
        else:
            self.version = committed.version

    def _skip_reason(self, entry: dict[str, Any]) -> str:
        if self.broken:
            return "an earlier file of this source failed to replay"
        if not self.source_key:
            self._load(entry["source_key"])
        if self.version is None:
            return self.problem
        if entry["source_key"] != self.source_key:
            return "source key differs from the other entries of its key id"
        if entry["source_version"] != self.version:
            return "superseded version (the transformer deletes it)"
        if any(e.get("check") in UNREPLAYABLE_CHECKS for e in entry["errors"]):
            return "not replayable (record lost to a broken gzip stream)"
        return ""

    def _reference_time(self, entry: dict[str, Any]) -> datetime:
        if isinstance(self.reference, datetime):
            return self.reference
        if self.reference == "now":
            return self.now
        source = entry["source_key"]
        if source not in self.landed:
            self.landed[source] = self._landing_time(entry)
        return self.landed[source]

    def _landing_time(self, entry: dict[str, Any]) -> datetime:
        # The transformer used the raw object's last-modified time; if that exact version
        # is gone, the time it was quarantined is the closest record (seconds later).
        try:
            info = self.storage.stat(entry["source_key"])
            if info.version == entry["source_version"]:
                return info.last_modified
        except StorageError:
            pass
        return _parse_instant(entry.get("quarantined_at")) or self.now

    def _seen_ids(self) -> Any:
        if self.seen is None:
            self.seen = _table_ids(self.storage, self.source_key)
        return self.seen

    def replay_file(
        self,
        qfile: QuarantineFile,
        moved_ids: dict[str, str],
        copies: _Copies,
        outcome: FileOutcome,
    ) -> None:
        result = self.result
        # A move an earlier run committed but did not finish: completing it is always right.
        reconciled = {
            i.entry["entry_id"]
            for i in qfile.items
            if i.entry is not None and i.entry["entry_id"] in moved_ids
        }
        candidates: list[Item] = []
        for item in qfile.items:
            entry = item.entry
            if entry is None or entry["entry_id"] in reconciled:
                continue
            if not self.selection.matches(entry):
                continue
            result.selected += 1
            if entry["entry_id"] in moved_ids:
                # A copy of an entry that was replayed from another file: junk, left alone.
                result.skipped["copy of an entry already replayed from another file"] += 1
                continue
            if not copies.first(qfile, entry):
                result.skipped["copy of an entry in another quarantine file"] += 1
                continue
            reason = self._skip_reason(entry)
            if reason:
                result.skipped[reason] += 1
                continue
            candidates.append(item)
        outcome.reconciled = sorted(reconciled)
        result.reconciled += len(reconciled)
        moving: list[_Move] = []
        changed: dict[int, list[dict[str, Any]]] = {}
        if candidates:
            moving, changed = self._revalidate(candidates, outcome)
        outcome.moved = [m.entry_id for m in moving]
        outcome.errors_changed = len(changed)
        result.moved += len(moving)
        result.errors_changed += len(changed)
        for move in moving:
            result.moved_by_rule.update(entry_rules(move.item.entry))  # type: ignore[arg-type]
        if self.dry_run or not (moving or reconciled or changed):
            return
        if moving:
            self._commit_rows(qfile, moving, outcome)
        self._rewrite(qfile, {*outcome.moved, *reconciled}, changed, outcome)

    def _revalidate(
        self, items: list[Item], outcome: FileOutcome
    ) -> tuple[list[_Move], dict[int, list[dict[str, Any]]]]:
        """Same pieces as the transformer: exact decode, typed row, pandera, file-wide ids.

        Returns the entries that pass, and the new errors of those whose errors changed
        (keyed by the item's position in the file).
        """
        import pyarrow as pa

        from handlers.core.decode import Chunk, Rejected, decode_record
        from handlers.core.transform import validate
        from schemas import contract, input_arrow_schema

        # File order, so the first of two equal transaction ids is the one kept.
        items = sorted(items, key=lambda i: (_int(i.entry.get("record_index")), i.line_no))  # type: ignore[union-attr]
        by_reference: dict[datetime, list[Item]] = defaultdict(list)
        for item in items:
            by_reference[self._reference_time(item.entry)].append(item)  # type: ignore[arg-type]
        moving: list[_Move] = []
        new_errors: dict[int, list[dict[str, Any]]] = {}
        for reference_time, group in sorted(by_reference.items()):
            rows: list[dict[str, Any]] = []
            row_items: list[Item] = []
            decode_errors: dict[int, list[tuple[str, str]]] = {}
            originals: list[dict[str, Any]] = []
            for item in group:
                entry = item.entry
                assert entry is not None
                text = record_text(entry, item.raw)
                decoded = decode_record(text)
                if isinstance(decoded, Rejected):
                    new_errors[item.line_no] = [
                        {"column": None, "check": decoded.check, "value": decoded.detail}
                    ]
                    continue
                row, errs = decoded
                if errs:
                    decode_errors[len(rows)] = list(errs)
                rows.append(row)
                row_items.append(item)
                originals.append(decode_exact(text))
            if not rows:
                continue
            chunk = Chunk(
                index=0,
                table=pa.Table.from_pylist(rows, schema=input_arrow_schema()),
                lines=[i.entry.get("line") for i in row_items],  # type: ignore[union-attr]
                record_indexes=[_int(i.entry.get("record_index")) for i in row_items],  # type: ignore[union-attr]
                raws=None,
                decode_errors=decode_errors,
            )
            failures = validate(chunk, contract(reference_time), self._seen_ids())
            for n, item in enumerate(row_items):
                if n in failures:
                    new_errors[item.line_no] = [
                        {"column": column, "check": check, "value": originals[n].get(column)}
                        for column, check in failures[n]
                    ]
                else:
                    moving.append(_Move(item, rows[n], reference_time))
        changed: dict[int, list[dict[str, Any]]] = {}
        for item in items:
            if item.line_no not in new_errors:
                continue
            entry = item.entry
            assert entry is not None
            outcome.still_failing += 1
            self.result.still_failing += 1
            errors = new_errors[item.line_no]
            self.result.failing_by_rule.update(
                list(dict.fromkeys(rule_label(e["column"], e["check"]) for e in errors))
            )
            if _canonical_errors(errors) != _canonical_errors(entry["errors"]):
                changed[item.line_no] = errors
        moving.sort(key=lambda m: m.item.line_no)
        return moving, changed

    def _commit_rows(
        self, qfile: QuarantineFile, moving: list[_Move], outcome: FileOutcome
    ) -> None:
        """Write the moved records' data files and commit them in one commit.

        The commit happens only while the table still holds the entries' version; if a
        new version was committed meanwhile, the written files are removed (no commit
        lists them) and the source is left for a later replay.
        """
        import pyarrow as pa

        from handlers.core.commit import DataFileWriter, commit_replay
        from handlers.core.rows import partitions, to_processed
        from handlers.core.table import load_table
        from schemas import input_arrow_schema

        table = pa.Table.from_pylist([m.row for m in moving], schema=input_arrow_schema())
        rows = to_processed(
            table,
            self.source_key,
            self.now,
            source_version=str(self.version),
            entry_ids=[m.entry_id for m in moving],
        )
        base = qfile.base or f"replay.{self.keyid}"
        files = DataFileWriter(self.storage, load_table(self.storage), base)
        try:
            for day, part in partitions(rows):
                files.write(part, day, qfile.chunk)
            commit_replay(
                self.storage, self.source_key, str(self.version), files.data_files, qfile.key
            )
        except PipelineError as e:
            if not isinstance(e, StorageError):  # decided: not committed, so nothing lists them
                files.discard()
            raise
        outcome.outputs = list(files.keys)

    def _rewrite(
        self,
        qfile: QuarantineFile,
        gone: set[str],
        changed: dict[int, list[dict[str, Any]]],
        outcome: FileOutcome,
    ) -> None:
        """The quarantine file without the moved entries (deleted when none remain)."""
        from schemas import SCHEMA_VERSION

        lines: list[bytes] = []
        stamp = _iso(self.now)
        for item in qfile.items:
            entry = item.entry
            if entry is not None and entry["entry_id"] in gone:
                continue
            if entry is not None and item.line_no in changed:
                updated = Item(
                    item.line_no,
                    item.raw,
                    entry
                    | {
                        "errors": changed[item.line_no],
                        "schema_version": SCHEMA_VERSION,
                        "revalidated_at": stamp,
                    },
                )
                lines.append(_dump_entry(updated))
            else:
                lines.append(item.raw)  # untouched lines stay byte for byte
        if not lines:
            self.storage.delete(qfile.key)
            outcome.deleted = True
        else:
            self.storage.put_bytes(qfile.key, b"".join(line + b"\n" for line in lines))
            outcome.rewritten = True


@dataclass(frozen=True)
class _Move:
    """An entry that passes now, with its typed row and the reference time it passed at."""

    item: Item
    row: dict[str, Any]
    reference: datetime

    @property
    def entry_id(self) -> str:
        return str(self.item.entry["entry_id"])  # type: ignore[index]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _table_ids(storage: Storage, source_key: str) -> Any:
    """SeenIds holding every transaction id the table holds for this source."""
    from pyiceberg.expressions import EqualTo

    from handlers.core.table import load_table
    from handlers.core.transform import SeenIds

    seen = SeenIds()
    table = load_table(storage)
    if table.current_snapshot() is None:
        return seen
    ids = table.scan(
        row_filter=EqualTo("source_key", source_key), selected_fields=("transaction_id",)
    ).to_arrow()
    column = ids.column("transaction_id").combine_chunks()
    if len(column):
        seen.claim(SeenIds.hashes(column))
    return seen


# --------------------------------------------------------------------------- purge


@dataclass
class PurgeResult:
    """What purge removed (or would remove)."""

    dry_run: bool
    cutoff: date
    files: list[str] = field(default_factory=list)
    entries: int = 0
    already_replayed: int = 0
    by_day: Counter[str] = field(default_factory=Counter)
    by_source_version: Counter[tuple[str, str]] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "removes_days_before": self.cutoff.isoformat(),
            "files": len(self.files),
            "entries": self.entries,
            "already_replayed": self.already_replayed,
            "by_day": dict(sorted(self.by_day.items())),
            "keys": self.files,
            "problems": [p.to_dict() for p in self.problems],
        }


def purge(
    storage: Storage,
    older_than_days: int,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PurgeResult:
    """Delete quarantine files whose landing day is more than N days before today (UTC).

    Files with unreadable lines are left in place (their entries can't be counted).
    """
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    cutoff = today - timedelta(days=older_than_days)
    result = PurgeResult(dry_run=dry_run, cutoff=cutoff)
    state = load_state(storage, result.problems)
    moved = state.replayed
    refs = [
        r for r in list_quarantine(storage, Selection(), result.problems, state) if r.day < cutoff
    ]
    for qfile in read_quarantine(storage, refs, result.problems):
        if any(i.entry is None for i in qfile.items):
            result.problems.append(Problem(qfile.key, "has unreadable lines; not purged"))
            continue
        entries = qfile.entries
        live = [e for e in entries if e["entry_id"] not in moved]
        if not dry_run:
            storage.delete(qfile.key)
        result.files.append(qfile.key)
        result.entries += len(live)
        result.already_replayed += len(entries) - len(live)
        result.by_day[qfile.day.isoformat()] += len(live)
        for e in live:
            result.by_source_version[(e["source_key"], e["source_version"])] += 1
    return result


def open_output(path: str) -> IO[bytes]:
    """A binary stream for `path`, or stdout for "-"."""
    import sys

    if path == "-":
        return sys.stdout.buffer
    from pathlib import Path

    try:
        return Path(path).open("wb")
    except OSError as e:
        raise PipelineError(f"cannot write {path}: {e.strerror or e}") from e
