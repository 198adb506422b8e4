"""The transform: one raw object in, partitioned Parquet and quarantine entries out."""

from __future__ import annotations

import functools
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa

from handlers.core import commit as commits
from handlers.core import screen, validation
from handlers.core.allocator import use_system_allocator
from handlers.core.decode import DEFAULT_CHUNK_BYTES, Chunk, Rejected, decode, decode_record
from handlers.core.entries import build_entry, decode_exact, dumps_batches, entry_id
from handlers.core.instants import InstantCache
from handlers.core.layout import key_id, output_base, quarantine_key, version_token
from handlers.core.prefetch import Ahead, prefetched
from handlers.core.rows import day_masks, to_processed
from handlers.core.seen import SeenIds
from handlers.core.storage import ObjectInfo, Storage
from handlers.core.table import load_table
from handlers.core.validation import validate
from schemas import contract, input_arrow_schema

if TYPE_CHECKING:
    from pyiceberg.table import Table


@dataclass
class TransformResult:
    """What one transform did; `records_in == processed + quarantined` always."""

    source_key: str
    source_version: str = ""
    records_in: int = 0
    processed: int = 0
    quarantined: int = 0
    quarantined_by_check: Counter[str] = field(default_factory=Counter)
    outputs: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: str = ""  # why nothing was done, if so
    seconds: float = 0.0
    # The earlier version of the same key this one replaced: its rows left the lake.
    replaced: dict[str, Any] | None = None

    @property
    def quarantine_rate(self) -> float:
        return self.quarantined / self.records_in if self.records_in else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_key": self.source_key,
            "source_version": self.source_version,
            "records_in": self.records_in,
            "processed": self.processed,
            "quarantined": self.quarantined,
            "quarantine_rate": round(self.quarantine_rate, 6),
            "quarantined_by_check": dict(sorted(self.quarantined_by_check.items())),
            "outputs": len(self.outputs),
            "removed_superseded": len(self.removed),
            "skipped": self.skipped or None,
            "seconds": round(self.seconds, 3),
            "replaced": self.replaced,
        }


def transform_object(
    storage: Storage,
    key: str,
    *,
    sequencer: str | None = None,
    now: datetime | None = None,
    chunk_bytes: int | None = None,
    on_progress: Callable[[TransformResult], None] | None = None,
) -> TransformResult:
    """Validate one raw object; commit its valid rows to the table, the rest to `quarantine/`.

    One version is one Iceberg commit that also replaces the key's earlier rows. A version
    the table already holds is skipped; one that a newer version of the key superseded
    (by the S3 event's `sequencer`, or the object having changed) removes what it wrote.
    `chunk_bytes` is how much raw text a chunk holds (default: `slice_bytes()`);
    `on_progress` sees the running totals after each chunk.
    """
    started = time.perf_counter()
    use_system_allocator()
    info = storage.stat(key)
    result = TransformResult(source_key=key, source_version=info.version)
    order = commits.order_token(sequencer, info)
    # The first chunk decodes on the worker thread while the table loads (pyiceberg's
    # imports, the catalog) and the version is decided; a skipped version drops it.
    storage.prepare_threads()  # the worker reads through the same client
    with prefetched(_decoded(storage, info, chunk_bytes or slice_bytes())) as chunks:
        table = load_table(storage)
        decision = commits.decide(storage, table, info, order)
        if decision.action != commits.COMMITTED:
            _skip(storage, result, decision)
            result.seconds = time.perf_counter() - started
            return result
        writer = _ChunkWriter(storage, table, info, now or datetime.now(UTC), order)
        # A failure here leaves written files behind: quarantine files a retry overwrites
        # (same names), data files no commit lists, which `maintain` removes as orphans.
        _write_chunks(writer, chunks, result, on_progress)
    decision = commit_outputs(
        storage, info, order, writer.files.data_files, writer.quarantine_keys, result, loaded=table
    )
    if decision.action != commits.COMMITTED:
        writer.files.discard()  # never committed: nothing lists them
        if decision.action == commits.SUPERSEDED and not _holds(storage, info):
            # This version's entries are junk, unless a same-version run committed it
            # meanwhile (then the newer version's commit removes them).
            for out in writer.quarantine_keys:
                storage.delete(out)
        _skip(storage, result, decision)
    result.seconds = time.perf_counter() - started
    return result


def _decoded(storage: Storage, info: ObjectInfo, chunk_bytes: int) -> Iterator[Chunk]:
    """The version's chunks; opened by whoever takes the first one (the worker thread).

    A read that fails (the object changed since `stat`) surfaces with the first chunk,
    after the version was decided: a superseded version is skipped, not failed.
    """
    with storage.open_read(info.key, info.version) as stream:
        yield from decode(stream, chunk_bytes)


def commit_outputs(
    storage: Storage,
    info: ObjectInfo,
    order: str,
    data_files: list[Any],
    quarantine_keys: list[str],
    result: TransformResult,
    *,
    loaded: Any = None,
) -> commits.Decision:
    """Commit one version's data files and entry files; on success, retire the old entries.

    The transform and the whole-file quarantine of a poison file both end here, so a
    version replaces its key's earlier rows and entries the same way whatever it holds.
    """
    decision = commits.commit_version(
        storage,
        info,
        order,
        data_files,
        lambda old: _properties(result, quarantine_keys, old),
        loaded=loaded,
    )
    if decision.action == commits.COMMITTED:
        # The replaced version's entries go after the commit: until then they were current.
        _remove_quarantine(storage, decision.committed, quarantine_keys, result)
        old = decision.committed
        if old is not None and old.version != info.version:
            result.replaced = replaced_summary(old.version, dict(old.counts))
    return decision


def replaced_summary(version: str, counts: dict[str, Any]) -> dict[str, Any]:
    """What replacing an earlier committed version of a key took out of the lake."""
    return {
        "version": version,
        "complete": True,  # only committed versions are ever replaced: no partial output
        "processed": int(counts.get("processed") or 0),
        "quarantined": int(counts.get("quarantined") or 0),
    }


def _holds(storage: Storage, info: ObjectInfo) -> bool:
    committed = commits.committed_version(load_table(storage), info.key)
    return committed is not None and committed.version == info.version


def _write_chunks(
    writer: _ChunkWriter,
    chunks: Iterator[Ahead],
    result: TransformResult,
    on_progress: Callable[[TransformResult], None] | None,
) -> None:
    writer.warm_up()  # one-time validation setup, while the first chunk decodes
    # A chunk's rows are written (Parquet encoding releases the GIL) on a thread of their
    # own while the next chunk is validated; one chunk's rows at a time. Leaving the block
    # waits for that thread, so nothing is written after this returns or raises.
    with ThreadPoolExecutor(1, thread_name_prefix="write-rows") as rows_thread:
        pending: Future[None] | None = None
        for ahead in chunks:
            rows = writer.plan(ahead.chunk, result, ahead)
            del ahead  # its slice and rows go now, not after the next slice is decoded
            if pending is not None:
                pending.result()  # the previous chunk's rows, written (or its error raised)
            pending = None if rows is None else rows_thread.submit(rows)
            if on_progress is not None:
                on_progress(result)
            pa.default_memory_pool().release_unused()  # keep RSS at the chunks in flight
        if pending is not None:
            pending.result()
    result.outputs = [*writer.files.keys, *writer.quarantine_keys]


def _properties(
    result: TransformResult, quarantine_keys: list[str], old: commits.Committed | None
) -> dict[str, str]:
    """Snapshot summary of a version's commit (besides its lineage): counts, entry files."""
    replaced = _superseded_entries(old, quarantine_keys)
    counts = {k: v for k, v in result.to_dict().items() if k in _COUNTS}
    return {
        commits.PROP_COUNTS: orjson.dumps(counts).decode(),
        commits.PROP_QUARANTINE_KEYS: orjson.dumps(quarantine_keys).decode(),
        commits.PROP_REPLACED_QUARANTINE: orjson.dumps(replaced).decode(),
    }


_COUNTS = ("records_in", "processed", "quarantined", "quarantined_by_check")


def _superseded_entries(old: commits.Committed | None, mine: list[str]) -> list[str]:
    if old is None:
        return []
    keep = set(mine)
    return [k for k in (*old.quarantine_keys, *old.replaced_quarantine_keys) if k not in keep]


def _remove_quarantine(
    storage: Storage, old: commits.Committed | None, mine: list[str], result: TransformResult
) -> None:
    for out in _superseded_entries(old, mine):
        storage.delete(out)
        result.removed.append(out)


def _skip(storage: Storage, result: TransformResult, decision: commits.Decision) -> None:
    """A version that needs no commit: report it, and finish a winner's cleanup if due."""
    result.skipped = decision.action
    committed = decision.committed
    if decision.action == commits.DONE and committed is not None:
        _restore_counts(result, dict(committed.counts))
        # The run that committed this version may have died before deleting the entries
        # of the version it replaced: this redelivery (or Lambda's retry) finishes that.
        for out in committed.replaced_quarantine_keys:
            if out not in committed.quarantine_keys:
                storage.delete(out)
    else:
        result.records_in = result.processed = result.quarantined = 0
        result.quarantined_by_check = Counter()


SMALL_LAMBDA_MB = 1024
SMALL_LAMBDA_CHUNK_BYTES = 16 * 1024 * 1024


def slice_bytes(environ: Mapping[str, str] | None = None) -> int:
    """Raw bytes per chunk: 32 MB, or 16 MB in a Lambda with less than 1 GB of memory.

    Peak memory is the imports (~150 MB) plus what three chunks in flight need, which
    grows with the slice (and with the share of bad records): see docs/performance.md.
    """
    env = os.environ if environ is None else environ
    memory = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    if memory.isdigit() and int(memory) < SMALL_LAMBDA_MB:
        return SMALL_LAMBDA_CHUNK_BYTES
    return DEFAULT_CHUNK_BYTES


def _restore_counts(result: TransformResult, summary: dict[str, Any]) -> None:
    result.records_in = int(summary.get("records_in", 0))
    result.processed = int(summary.get("processed", 0))
    result.quarantined = int(summary.get("quarantined", 0))
    result.quarantined_by_check = Counter(summary.get("quarantined_by_check", {}))


class _ChunkWriter:
    """Writes decoded chunks as data files and quarantine files; holds the file-wide state."""

    def __init__(
        self, storage: Storage, table: Table, info: ObjectInfo, now: datetime, order: str = ""
    ) -> None:
        self.storage = storage
        self.info = info
        self.order = order
        self.base = output_base(info.key, info.version)
        self.key_id = key_id(info.key)
        self.version_token = version_token(info.version)
        self.schema = contract(info.last_modified)
        self.now = now
        self.now_text = now.isoformat().replace("+00:00", "Z")
        self.seen = SeenIds()
        self.instants = InstantCache()  # this run's parsed timestamp column, chunk by chunk
        self.files = commits.DataFileWriter(storage, table, self.base)
        self.quarantine_keys: list[str] = []

    def warm_up(self) -> None:
        """Validation's one-time setup, while the first chunk decodes."""
        validation.warm_up(self.schema)

    def plan(
        self, chunk: Chunk, result: TransformResult, ahead: Ahead | None = None
    ) -> Callable[[], None] | None:
        """Validate a chunk and write its entries to quarantine; what writes its valid rows.

        The rows are left to the caller (None: the chunk has no valid row), which writes
        them while it validates the next chunk.
        """
        hashes = parsed = None
        if ahead is not None and ahead.instants is not None:
            hashes, parsed = ahead.id_hashes, ahead.instants
        self.instants.hold(chunk.table.column("timestamp"), parsed)
        errors = validate(chunk, self.schema, self.seen, id_hashes=hashes, instants=self.instants)
        valid = np.ones(chunk.table.num_rows, dtype=bool)
        if errors:
            valid[list(errors)] = False
        # Entries are serialised as they are built and written MAX_ENTRIES_PER_FILE at a
        # time: a chunk of bad records holds one file's JSON text, never all its dicts.
        entries = self._counted(self._entries(chunk, errors), result)
        for part, text in enumerate(dumps_batches(entries, screen.MAX_ENTRIES_PER_FILE)):
            tag = f"p{part:03d}" if part else ""
            key = quarantine_key(self.base, chunk.index, self.info.last_modified, tag)
            self.quarantine_keys.append(key)
            self.storage.put_bytes(key, text)
        chunk.release_source()  # the raw slice was only needed for the entries' text
        instants = self.instants.parsed if valid.any() else None
        self.instants.release()
        result.records_in += chunk.records
        result.processed += int(valid.sum())
        if instants is None:
            return None
        return functools.partial(self._write_rows, chunk.table, instants, valid, chunk.index)

    @staticmethod
    def _counted(
        entries: Iterator[dict[str, Any]], result: TransformResult
    ) -> Iterator[dict[str, Any]]:
        for entry in entries:
            result.quarantined += 1
            for error in entry["errors"]:
                result.quarantined_by_check[_label(error["column"], error["check"])] += 1
            yield entry

    def _write_rows(
        self, rows: pa.Table, instants: pa.Array, valid: np.ndarray, chunk_index: int
    ) -> None:
        """The valid rows as data files, one per day; `instants` is validation's parse."""
        for day, mask in day_masks(instants, valid):
            table, parsed = rows, instants
            if mask is not None:
                selected = pa.array(mask)
                table, parsed = table.filter(selected), instants.filter(selected)
            processed = to_processed(
                table, self.info.key, self.now, instants=parsed, source_version=self.info.version
            )
            self.files.write(processed, day, chunk_index)

    def _entries(
        self, chunk: Chunk, errors: dict[int, list[tuple[str, str]]]
    ) -> Iterator[dict[str, Any]]:
        for rejected in chunk.rejected:
            yield build_entry(
                entry_id=entry_id(self.key_id, self.version_token, rejected.record_index),
                raw=rejected.raw,
                parsed=None,
                errors=_rejection_errors(rejected),
                source_key=self.info.key,
                source_version=self.info.version,
                line=rejected.line,
                record_index=rejected.record_index,
                quarantined_at=self.now_text,
            )
        for row in sorted(errors):
            raw = chunk.raw(row)
            original = _original(raw, [column for column, _ in errors[row]])
            # Plain ints for the JSON: a chunk may hold its positions as a numpy array.
            record_index = int(chunk.record_indexes[row])
            line = chunk.lines[row]
            yield build_entry(
                entry_id=entry_id(self.key_id, self.version_token, record_index),
                raw=raw,
                parsed=original,
                errors=_quoted_errors(original, errors[row]),
                source_key=self.info.key,
                source_version=self.info.version,
                line=None if line is None else int(line),
                record_index=record_index,
                quarantined_at=self.now_text,
            )


def _rejection_errors(rejected: Rejected) -> list[dict[str, Any]]:
    """A quarantine entry's errors for a record that never became a row."""
    return [{"column": None, "check": rejected.check, "value": rejected.detail}]


def _quoted_errors(original: dict[str, Any], errs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """A quarantine entry's errors for a row: each failure with the value it failed on."""
    return [
        {"column": column, "check": check, "value": original.get(column)} for column, check in errs
    ]


@dataclass(frozen=True)
class RecordVerdict:
    """One record checked as the transformer checks it: its typed row, or its entry errors."""

    row: dict[str, Any] | None  # the typed input row, when the record passes
    errors: list[dict[str, Any]]  # {column, check, value} as entries quote them; [] if it passes


def validate_records(
    texts: Sequence[bytes],
    *,
    reference_time: datetime,
    seen: SeenIds | Callable[[], SeenIds],
) -> list[RecordVerdict]:
    """Check records (one JSON text each, in file order) exactly as the transformer does.

    The same pieces as `transform_object`: the exact decode (`decode_record`), the
    contract at `reference_time` (the transformer uses the raw object's landing time)
    and the file-wide duplicate check, in which records that pass claim their ids in
    `seen` (or in what `seen()` gives, asked only if some record decodes to a row).
    Replay calls this; one verdict per text, in order.
    """
    verdicts: list[RecordVerdict] = [RecordVerdict(None, [])] * len(texts)
    rows: list[dict[str, Any]] = []
    positions: list[int] = []
    decode_errors: dict[int, list[tuple[str, str]]] = {}
    for n, text in enumerate(texts):
        decoded = decode_record(text)
        if isinstance(decoded, Rejected):
            verdicts[n] = RecordVerdict(None, _rejection_errors(decoded))
            continue
        row, errs = decoded
        if errs:
            decode_errors[len(rows)] = list(errs)
        rows.append(row)
        positions.append(n)
    if not rows:
        return verdicts
    table = pa.Table.from_pylist(rows, schema=input_arrow_schema())
    raws = [texts[n] for n in positions]
    chunk = Chunk(0, table, [None] * len(rows), positions, raws, decode_errors)
    failures = validate(
        chunk, contract(reference_time), seen if isinstance(seen, SeenIds) else seen()
    )
    for i, n in enumerate(positions):
        if i in failures:
            original = _original(texts[n], [column for column, _ in failures[i]])
            verdicts[n] = RecordVerdict(None, _quoted_errors(original, failures[i]))
        else:
            verdicts[n] = RecordVerdict(rows[i], [])
    return verdicts


def _label(column: str | None, check: str) -> str:
    return f"{column}:{check}" if column else check


def _original(raw: bytes, columns: list[str]) -> dict[str, Any]:
    """The record as decoded JSON, exact for the values its errors quote.

    orjson is several times faster; its values are the exact ones unless a quoted value
    holds a fraction (a float there, a Decimal in the exact parse), or it can't read the
    line at all (NaN, integers past 64 bits): then the exact parse.
    """
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return decode_exact(raw)
    if not isinstance(obj, dict) or any(
        isinstance(obj.get(c), float | list | dict) for c in columns
    ):
        return decode_exact(raw)
    return obj
