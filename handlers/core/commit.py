"""One version of a raw object is one Iceberg commit: data files, lineage and landing order."""

from __future__ import annotations

import random
import time
import uuid
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from handlers.core.errors import ObjectNotFound, PipelineError, StorageError
from handlers.core.storage import ObjectInfo, Storage
from handlers.core.table import load_table
from schemas.iceberg import TABLE_PREFIX, iceberg_arrow_schema

if TYPE_CHECKING:
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Table

# Snapshot summary properties every pipeline commit carries (strings, as Iceberg requires).
PROP_OPERATION = "pipeline.operation"  # TRANSFORM or REPLAY
PROP_SOURCE_KEY = "pipeline.source-key"
PROP_SOURCE_VERSION = "pipeline.source-version"
PROP_ORDER = "pipeline.source-order"  # landing-order token, see order_token()
PROP_COUNTS = "pipeline.counts"  # JSON: records_in, processed, quarantined, by check
PROP_QUARANTINE_KEYS = "pipeline.quarantine-keys"  # JSON list: this version's entry files
PROP_REPLACED_QUARANTINE = "pipeline.replaced-quarantine-keys"  # the previous version's
PROP_REPLAY_FROM = "pipeline.replay.quarantine-key"  # the file a replay moved entries from
TRANSFORM = "transform"
REPLAY = "replay"

# Data files live below the table (`processed/data/…`), so `maintain` finds orphans there.
DATA_PREFIX = f"{TABLE_PREFIX}/data/"
# Commit conflicts: bounded retries with full-jitter exponential backoff, then Lambda retries.
COMMIT_ATTEMPTS = 8
BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 2.0
# Columns whose values are (nearly) all distinct: a dictionary page only costs time.
_NO_DICTIONARY = frozenset({"transaction_id", "timestamp", "replayed_entry_id"})

COMMITTED = "committed"
DONE = "already processed"
SUPERSEDED = "superseded by a newer version"


@dataclass(frozen=True)
class Committed:
    """What the table says is the current version of one source key."""

    source_key: str
    version: str
    order: str = ""
    counts: Mapping[str, Any] = field(default_factory=dict)
    quarantine_keys: tuple[str, ...] = ()
    replaced_quarantine_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    """What a writer should do with its version: COMMITTED, DONE or SUPERSEDED."""

    action: str
    committed: Committed | None = None  # the key's version in the table before this writer


def order_token(sequencer: str | None, info: ObjectInfo) -> str:
    """A sortable landing-order token for one object version.

    S3 events carry a `sequencer` (hex, growing per key; compared after left-padding to
    equal length). Without one (a local lake, or a manual run) the last-modified instant
    is recorded instead, for the record only (see `newer`).
    """
    if sequencer:
        return f"s3:{sequencer.strip().upper().rjust(40, '0')}"
    micros = int(info.last_modified.timestamp() * 1_000_000)
    return f"mtime:{micros:020d}"


def newer(a: str, b: str) -> bool:
    """True if token `a` is known to come after `b`: both S3 sequencers, `a` larger.

    Last-modified tokens are recorded but never decide: a local file's mtime can be set
    back (`cp -p`, `touch -d`), and whether a version is still the latest is checked
    against the store itself anyway (`decide`).
    """
    if not (a.startswith("s3:") and b.startswith("s3:")):
        return False
    return a > b


def _committed(summary: Any) -> Committed:
    def listed(name: str) -> tuple[str, ...]:
        try:
            return tuple(str(k) for k in orjson.loads(summary[name] or "[]"))
        except orjson.JSONDecodeError:
            return ()

    try:
        counts = orjson.loads(summary[PROP_COUNTS] or "{}")
    except orjson.JSONDecodeError:
        counts = {}
    return Committed(
        source_key=str(summary[PROP_SOURCE_KEY]),
        version=str(summary[PROP_SOURCE_VERSION] or ""),
        order=str(summary[PROP_ORDER] or ""),
        counts=counts if isinstance(counts, dict) else {},
        quarantine_keys=listed(PROP_QUARANTINE_KEYS),
        replaced_quarantine_keys=listed(PROP_REPLACED_QUARANTINE),
    )


def _history(table: Table) -> tuple[list[Any], bool]:
    """The current snapshot's ancestry, newest first, and whether it reaches the first one."""
    from pyiceberg.table.snapshots import ancestors_of

    chain = list(ancestors_of(table.current_snapshot(), table.metadata))
    # Expiry clears the parent of the oldest snapshot it keeps, so a missing parent alone
    # does not prove the chain starts at the table's first commit (sequence number 1).
    first = not chain or (
        chain[-1].parent_snapshot_id is None and (chain[-1].sequence_number or 1) <= 1
    )
    return chain, first


def committed_sources(table: Table) -> dict[str, Committed]:
    """Per source key, the version its latest transform commit made current.

    Read from the snapshot summaries of the current snapshot's ancestry (newest first):
    the table itself, no side manifest. Once `maintain` has expired older snapshots, the
    keys whose last commit went with them are known from the rows' lineage instead
    (version only; a key whose expired commit held no rows is then unknown).
    """
    found, complete = _from_history(table)
    if not complete:
        for key, version in versions_in_rows(table, None).items():
            if key not in found:
                found[key] = Committed(source_key=key, version=version)
    return found


def _from_history(table: Table) -> tuple[dict[str, Committed], bool]:
    """Each key's latest transform commit in the ancestry, and whether that is complete."""
    found: dict[str, Committed] = {}
    history, complete = _history(table)
    for snapshot in history:
        summary = snapshot.summary
        if summary is None or summary[PROP_OPERATION] != TRANSFORM:
            continue
        key = summary[PROP_SOURCE_KEY]
        if key and key not in found:
            found[key] = _committed(summary)
    return found, complete


def versions_in_rows(table: Table, keys: list[str] | None) -> dict[str, str]:
    """source_key -> source_version of the rows the current snapshot holds for `keys`
    (None: every key)."""
    from pyiceberg.expressions import AlwaysTrue, In

    if keys == [] or table.current_snapshot() is None:
        return {}
    row_filter = AlwaysTrue() if keys is None else In("source_key", keys)
    rows = table.scan(
        row_filter=row_filter, selected_fields=("source_key", "source_version")
    ).to_arrow()
    pairs = rows.group_by(["source_key", "source_version"]).aggregate([])
    return dict(
        zip(
            pairs.column("source_key").to_pylist(),
            pairs.column("source_version").to_pylist(),
            strict=True,
        )
    )


def committed_version(table: Table, key: str) -> Committed | None:
    """The version of `key` the table holds, from its history or else its rows."""
    history, complete = _from_history(table)
    found = history.get(key)
    if found is not None or complete:
        return found  # with the whole history at hand, no commit means no rows
    version = versions_in_rows(table, [key]).get(key)
    return Committed(source_key=key, version=version) if version else None


def decide(storage: Storage, table: Table, info: ObjectInfo, order: str) -> Decision:
    """Commit, or stop because this version is already in the table or is no longer latest.

    "Latest" is the raw object's version in the store now: a newer one has landed (and
    its own event will come) if the object changed. Deciding on the table as loaded and
    committing against exactly that snapshot makes the check and the commit one step.
    """
    committed = committed_version(table, info.key)
    if committed is not None and committed.version == info.version:
        return Decision(DONE, committed)
    if committed is not None and newer(committed.order, order):
        return Decision(SUPERSEDED, committed)
    try:
        current = storage.stat(info.key).version
    except ObjectNotFound:
        current = None  # deleted since: nothing of it should stay
    if current != info.version:
        return Decision(SUPERSEDED, committed)
    return Decision(COMMITTED, committed)


def _no_auto_retry(table: Table) -> Table:
    """The table as loaded, with pyiceberg's own conflict retries off for our transactions.

    pyiceberg would rebase a failed commit on the new snapshot without asking whether
    this version should still win; commit_version() re-decides instead. The change is in
    memory only: commits send updates, never these properties.
    """
    from pyiceberg.table import Table as IcebergTable

    props = {**table.metadata.properties, "commit.retry.num-retries": "0"}
    return IcebergTable(
        table.name(),
        table.metadata.model_copy(update={"properties": props}),
        table.metadata_location,
        table.io,
        table.catalog,
    )


def commit_version(
    storage: Storage,
    info: ObjectInfo,
    order: str,
    data_files: list[DataFile],
    properties: Callable[[Committed | None], dict[str, str]],
    *,
    loaded: Table | None = None,
    attempts: int = COMMIT_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> Decision:
    """Replace `info.key`'s rows with `data_files` in one commit, if this version should win.

    Each attempt loads the table afresh and decides again; a commit that loses the race
    (CommitFailedException: another writer committed first) is retried after a jittered
    backoff. After `attempts` losses the invocation fails (transient) so Lambda retries.
    """
    from pyiceberg.expressions import EqualTo

    for attempt in range(attempts):
        # The table the caller decided on serves the first attempt: if anyone committed
        # since, the commit fails on its snapshot assertion and the retry reloads.
        table = loaded if attempt == 0 and loaded is not None else _loaded(storage, info.key)
        decision = decide(storage, table, info, order)
        if decision.action != COMMITTED:
            return decision
        props = {
            **properties(decision.committed),
            PROP_OPERATION: TRANSFORM,
            PROP_SOURCE_KEY: info.key,
            PROP_SOURCE_VERSION: info.version,
            PROP_ORDER: order,
        }
        try:
            txn = _no_auto_retry(table).transaction()
            if decision.committed is not None:
                # Rows of an earlier version may exist (a key's first version has none, and
                # a commit of one since would fail this commit's snapshot assertion).
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", "Delete operation did not match any")
                    txn.delete(EqualTo("source_key", info.key), snapshot_properties=props)
            with txn.update_snapshot(snapshot_properties=props).fast_append() as append:
                for data_file in data_files:
                    append.append_data_file(data_file)
            txn.commit_transaction()
            return decision
        except _lost_races():
            sleep(random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)))
        except _transient_errors() as e:
            raise StorageError("commit", info.key, str(e), transient=True) from e
    raise StorageError(
        "commit",
        info.key,
        f"lost {attempts} commit races to concurrent writers",
        transient=True,
    )


def commit_replay(
    storage: Storage, key: str, version: str, data_files: list[DataFile], quarantine_key: str
) -> Table:
    """Append replayed rows in one commit, if `version` still is the key's current version.

    Raises PipelineError (not retried here) when a newer version was committed meanwhile.
    """
    for attempt in range(COMMIT_ATTEMPTS):
        table = _loaded(storage, key)
        committed = committed_version(table, key)
        if committed is None or committed.version != version:
            raise PipelineError(
                f"{key} changed while replaying (another version is current); "
                "nothing written for it, run replay again later"
            )
        props = {
            PROP_OPERATION: REPLAY,
            PROP_SOURCE_KEY: key,
            PROP_SOURCE_VERSION: version,
            PROP_REPLAY_FROM: quarantine_key,
        }
        try:
            txn = _no_auto_retry(table).transaction()
            with txn.update_snapshot(snapshot_properties=props).fast_append() as append:
                for data_file in data_files:
                    append.append_data_file(data_file)
            return txn.commit_transaction()
        except _lost_races():
            time.sleep(random.uniform(0, min(BACKOFF_CAP_SECONDS, 0.05 * 2**attempt)))
        except _transient_errors() as e:
            raise StorageError("commit", key, str(e), transient=True) from e
    raise StorageError("commit", key, f"lost {COMMIT_ATTEMPTS} commit races", transient=True)


def _loaded(storage: Storage, key: str) -> Table:
    try:
        return load_table(storage)
    except _transient_errors() as e:
        raise StorageError("load table", key, str(e), transient=True) from e


def _lost_races() -> tuple[type[BaseException], ...]:
    """Commit failures that mean "try again on the fresh table": a concurrent commit, or a
    SQL catalog busy with one (SQLite locks the file while another process commits)."""
    from pyiceberg.exceptions import CommitFailedException

    try:
        from sqlalchemy.exc import OperationalError
    except ImportError:  # the Glue catalog needs no SQL driver
        return (CommitFailedException,)
    return (CommitFailedException, OperationalError)


def _transient_errors() -> tuple[type[BaseException], ...]:
    """Failures of the catalog or its file IO that a retry may cure."""
    from botocore.exceptions import BotoCoreError, ClientError
    from pyiceberg.exceptions import CommitStateUnknownException, ServerError

    return (OSError, CommitStateUnknownException, ServerError, BotoCoreError, ClientError)


@dataclass
class DataFileWriter:
    """Writes one version's Parquet data files through the storage; keeps their DataFiles.

    Files are zstd Parquet with the Iceberg field ids, named per run (`run`), so two runs
    never write the same object and a loser can delete exactly what it wrote.
    """

    storage: Storage
    table: Table
    base: str  # <stem>.<key id>.<version token>, see handlers.core.layout
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    data_files: list[DataFile] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)

    def write(self, rows: pa.Table, partition: tuple[int, int, int], chunk: int) -> str:
        """Write rows of one partition day (processed columns, any int widths) as a file."""
        year, month, day = partition
        tag = f"{self.base}.{self.run}.c{chunk:05d}.{len(self.keys):04d}"
        key = f"{DATA_PREFIX}year={year}/month={month}/day={day}/{tag}.parquet"
        data = _to_file_schema(rows)
        buffer = pa.BufferOutputStream()
        pq.write_table(
            data,
            buffer,
            compression="zstd",
            use_dictionary=[n for n in data.column_names if n not in _NO_DICTIONARY],
        )
        payload = buffer.getvalue()
        self.keys.append(key)  # before the write: a failed write is still ours to clean up
        self.storage.put_bytes(key, payload.to_pybytes())
        self.data_files.append(self._data_file(key, payload, partition))
        return key

    def _data_file(self, key: str, payload: pa.Buffer, partition: tuple[int, ...]) -> DataFile:
        from pyiceberg.io.pyarrow import (
            compute_statistics_plan,
            data_file_statistics_from_parquet_metadata,
            parquet_path_to_id_mapping,
        )
        from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
        from pyiceberg.typedef import Record

        metadata = self.table.metadata
        schema = metadata.schema()
        stats = data_file_statistics_from_parquet_metadata(
            parquet_metadata=pq.read_metadata(pa.BufferReader(payload)),
            stats_columns=compute_statistics_plan(schema, metadata.properties),
            parquet_column_mapping=parquet_path_to_id_mapping(schema),
        )
        location = metadata.location.rstrip("/")
        return DataFile.from_args(
            content=DataFileContent.DATA,
            file_path=f"{location}/{key.removeprefix(TABLE_PREFIX + '/')}",
            file_format=FileFormat.PARQUET,
            partition=Record(*partition),
            file_size_in_bytes=payload.size,
            sort_order_id=None,
            spec_id=metadata.default_spec_id,
            equality_ids=None,
            key_metadata=None,
            **stats.to_serialized_dict(),
        )

    def discard(self) -> None:
        """Delete every file this run wrote: only for files no commit can list."""
        for key in self.keys:
            self.storage.delete(key)


def _file_schema() -> pa.Schema:
    # The table's Arrow schema (field ids as Parquet metadata), with plain strings: large
    # strings would copy every value and store the same bytes.
    schema = iceberg_arrow_schema()
    return pa.schema(
        [f.with_type(pa.string()) if pa.types.is_large_string(f.type) else f for f in schema]
    )


_FILE_SCHEMA: list[pa.Schema] = []


def _to_file_schema(rows: pa.Table) -> pa.Table:
    if not _FILE_SCHEMA:
        _FILE_SCHEMA.append(_file_schema())
    schema = _FILE_SCHEMA[0]
    return pa.table([rows.column(f.name).cast(f.type) for f in schema], schema=schema)
