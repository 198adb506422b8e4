"""Table maintenance: compact small files, expire old snapshots, remove orphan files."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from handlers.core.errors import ConfigError, PipelineError
from handlers.core.storage import LocalStorage, S3Storage, Storage
from handlers.core.table import load_table, table_location
from schemas.iceberg import TABLE_PREFIX

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Table

MB = 1024 * 1024
DEFAULT_TARGET_FILE_MB = 128
DEFAULT_SNAPSHOT_RETENTION_HOURS = 168.0
DEFAULT_ORPHAN_MIN_AGE_HOURS = 72.0
# A transformer invocation lives at most 15 minutes: files younger than this may belong to a
# commit still in flight, so orphan removal never goes below it.
MIN_ORPHAN_AGE_HOURS = 1.0
# Files this share of the target or larger are left as they are.
SMALL_FILE_SHARE = 0.75
MAX_ATTEMPTS = 6
# Snapshot property that marks maintenance commits (the transformer's idempotency keys differ).
OPERATION_PROPERTY = "pipeline.operation"
TABLE_DIRS = (f"{TABLE_PREFIX}/data/", f"{TABLE_PREFIX}/metadata/")


@dataclass(frozen=True)
class MaintainSettings:
    """What one maintenance run does; validated on construction."""

    target_file_mb: int = DEFAULT_TARGET_FILE_MB
    snapshot_retention_hours: float = DEFAULT_SNAPSHOT_RETENTION_HOURS
    orphan_min_age_hours: float = DEFAULT_ORPHAN_MIN_AGE_HOURS
    dry_run: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.target_file_mb <= 4096:
            raise ConfigError("target_file_mb", f"must be 1..4096, got {self.target_file_mb}")
        if not 0 < self.snapshot_retention_hours <= 24 * 3650:
            raise ConfigError(
                "snapshot_retention_hours",
                f"must be more than 0 (hours), got {self.snapshot_retention_hours}",
            )
        if not MIN_ORPHAN_AGE_HOURS <= self.orphan_min_age_hours <= 24 * 3650:
            raise ConfigError(
                "orphan_min_age_hours",
                f"must be at least {MIN_ORPHAN_AGE_HOURS:g} hour(s) so that files of a "
                f"commit in flight are never removed, got {self.orphan_min_age_hours}",
            )


@dataclass
class PartitionCompaction:
    """One partition's data files before and after compaction."""

    partition: dict[str, Any]
    files_before: int
    files_after: int
    bytes_before: int
    bytes_after: int
    rows: int


@dataclass
class MaintainResult:
    """What a maintenance run did (or, with dry_run, would do)."""

    dry_run: bool
    partitions: list[PartitionCompaction] = field(default_factory=list)
    commits: int = 0
    conflicts: int = 0
    snapshots_before: int = 0
    snapshots_expired: int = 0
    orphans_removed: list[str] = field(default_factory=list)
    orphan_bytes: int = 0
    seconds: float = 0.0

    @property
    def files_before(self) -> int:
        return sum(p.files_before for p in self.partitions)

    @property
    def files_after(self) -> int:
        return sum(p.files_after for p in self.partitions)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(files_before=self.files_before, files_after=self.files_after)
        out["orphans_removed"] = len(self.orphans_removed)
        out["orphan_keys"] = self.orphans_removed[:100]
        return out


def maintain(
    storage: Storage,
    settings: MaintainSettings,
    *,
    now: datetime | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> MaintainResult:
    """Compact, expire and remove orphans on `storage`'s table; the CLI and Lambda call this."""
    started = time.perf_counter()
    say = on_progress or (lambda _message: None)
    now = now or datetime.now(UTC)
    table = load_table(storage)
    expected = table_location(storage)
    if table.location().rstrip("/") != expected:
        # Orphan removal lists `storage`: a table living elsewhere would make every file
        # there look unreferenced.
        raise ConfigError("table", f"{table.name()} lives at {table.location()}, not at {expected}")
    result = MaintainResult(dry_run=settings.dry_run)
    compact(table, settings.target_file_mb * MB, result, dry_run=settings.dry_run, say=say)
    table.refresh()
    expire_snapshots(table, now - timedelta(hours=settings.snapshot_retention_hours), result)
    say(f"snapshots: {result.snapshots_before}, expired {result.snapshots_expired}")
    remove_orphans(storage, table, now - timedelta(hours=settings.orphan_min_age_hours), result)
    say(f"orphans: {len(result.orphans_removed)} ({result.orphan_bytes:,} bytes)")
    result.seconds = round(time.perf_counter() - started, 3)
    return result


# --------------------------------------------------------------------------- compaction


def plan_bins(files: Iterable[DataFile], target_bytes: int) -> list[list[DataFile]]:
    """Groups of small files to merge, each up to about `target_bytes` on disk.

    Files at least SMALL_FILE_SHARE of the target stay; a group of one is no gain.
    """
    small = sorted(
        (f for f in files if f.file_size_in_bytes < SMALL_FILE_SHARE * target_bytes),
        key=lambda f: f.file_path,
    )
    bins: list[list[DataFile]] = []
    current: list[DataFile] = []
    size = 0
    for f in small:
        if current and size + f.file_size_in_bytes > target_bytes:
            bins.append(current)
            current, size = [], 0
        current.append(f)
        size += f.file_size_in_bytes
    if current:
        bins.append(current)
    return [b for b in bins if len(b) > 1]


def _partitions(table: Table) -> dict[tuple[Any, ...], list[Any]]:
    """The current snapshot's scan tasks, grouped by partition (one spec: identity y/m/d)."""
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for task in table.scan().plan_files():
        key = (task.file.spec_id, *task.file.partition)
        groups.setdefault(key, []).append(task)
    return groups


def compact(
    table: Table,
    target_bytes: int,
    result: MaintainResult,
    *,
    dry_run: bool,
    say: Callable[[str], None],
) -> None:
    """Rewrite each partition's small files, one atomic replace per partition."""
    spec = table.spec()
    names = [f.name for f in spec.fields]
    keys = sorted(_partitions(table), key=str)
    for n, key in enumerate(keys, start=1):
        partition = dict(zip(names, key[1:], strict=True))
        summary = _compact_partition(table, key, target_bytes, result, dry_run=dry_run)
        if summary is None:
            continue
        summary.partition = partition
        result.partitions.append(summary)
        say(
            f"[{n}/{len(keys)}] {partition}: {summary.files_before} -> "
            f"{summary.files_after} files ({summary.bytes_before:,} -> "
            f"{summary.bytes_after:,} bytes)"
        )


def _compact_partition(
    table: Table, key: tuple[Any, ...], target_bytes: int, result: MaintainResult, *, dry_run: bool
) -> PartitionCompaction | None:
    """Plan from the refreshed table and commit; a conflict re-plans, up to MAX_ATTEMPTS."""
    from pyiceberg.exceptions import CommitFailedException, ValidationException

    for attempt in range(MAX_ATTEMPTS):
        table.refresh()
        tasks = _partitions(table).get(key, [])
        if any(t.delete_files for t in tasks):
            return None  # row-level deletes pending: left to engines that apply them
        bins = plan_bins((t.file for t in tasks), target_bytes)
        if not bins:
            return None
        before = [t.file for t in tasks]
        merged = {f.file_path for b in bins for f in b}
        kept = [f for f in before if f.file_path not in merged]
        summary = PartitionCompaction(
            partition={},
            files_before=len(before),
            files_after=len(kept) + len(bins),
            bytes_before=sum(f.file_size_in_bytes for f in before),
            bytes_after=sum(f.file_size_in_bytes for f in before),
            rows=sum(f.record_count for f in before),
        )
        if dry_run:
            return summary
        written: list[DataFile] = []
        try:
            written = [_rewrite(table, b) for b in bins]
            _commit_replace(table, bins, written)
        except (CommitFailedException, ValidationException):
            # Another writer changed this partition first: our files were never committed.
            _delete_uncommitted(table, written)
            result.conflicts += 1
            time.sleep(random.uniform(0, 0.05 * 2**attempt))
            continue
        except BaseException:
            _delete_uncommitted(table, written)
            raise
        result.commits += 1
        summary.bytes_after = sum(f.file_size_in_bytes for f in kept) + sum(
            f.file_size_in_bytes for f in written
        )
        return summary
    raise PipelineError(
        f"compaction of partition {key[1:]} lost {MAX_ATTEMPTS} commits in a row to "
        "concurrent writers; run maintain again later"
    )


def write_data_files(
    table: Table, parts: list[pa.Table], partition: Iterable[Any]
) -> list[DataFile]:
    """Write each Arrow table in `parts` as one data file of `partition` (not committed)."""
    from pyiceberg.io.pyarrow import write_file
    from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
    from pyiceberg.table import WriteTask

    schema = table.schema()
    spec = table.spec()
    key = PartitionKey(
        field_values=[
            PartitionFieldValue(f, v) for f, v in zip(spec.fields, partition, strict=True)
        ],
        partition_spec=spec,
        schema=schema,
    )
    write_uuid = uuid.uuid4()
    tasks = [
        WriteTask(write_uuid, n, schema, part.to_batches(), partition_key=key)
        for n, part in enumerate(parts)
    ]
    return list(write_file(table.io, table.metadata, iter(tasks)))


def _rewrite(table: Table, files: list[DataFile]) -> DataFile:
    """Read `files` (no deletes apply) and write their rows, unchanged, as one data file."""
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan
    from pyiceberg.table import FileScanTask

    scan = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue())
    # One scan over all files, in order: pyiceberg unifies their Arrow types (string vs
    # large_string differ between files and pyarrow builds).
    rows = scan.to_table([FileScanTask(f) for f in files])
    (data_file,) = write_data_files(table, [rows], files[0].partition)
    if data_file.record_count != sum(f.record_count for f in files):
        raise PipelineError(
            f"compaction wrote {data_file.record_count} rows for {len(files)} files"
        )
    return data_file


def _commit_replace(table: Table, bins: list[list[DataFile]], written: list[DataFile]) -> None:
    """One snapshot that removes the small files and adds the merged ones."""
    from pyiceberg.expressions import And, EqualTo

    spec = table.specs()[bins[0][0].spec_id]
    schema = table.schema()
    # Conflict detection scoped to this partition: commits elsewhere never force a re-plan.
    predicate = None
    for pf, value in zip(spec.fields, bins[0][0].partition, strict=True):
        term = EqualTo(schema.find_column_name(pf.source_id), value)
        predicate = term if predicate is None else And(predicate, term)
    properties = {OPERATION_PROPERTY: "compact"}
    with (
        table.transaction() as txn,
        txn.update_snapshot(snapshot_properties=properties).overwrite() as replace,
    ):
        if predicate is not None:
            replace.delete_by_predicate(predicate)
        for old in (f for b in bins for f in b):
            replace.delete_data_file(old)
        for new in written:
            replace.append_data_file(new)


def _delete_uncommitted(table: Table, files: list[DataFile]) -> None:
    for f in files:
        try:
            table.io.delete(f.file_path)
        except Exception:  # noqa: S112 - left for orphan removal, which will find it
            continue


# --------------------------------------------------------------------------- expiry


def expire_snapshots(table: Table, older_than: datetime, result: MaintainResult) -> None:
    """Drop snapshots older than `older_than`; branch heads (the current one) always stay."""
    snapshots = table.metadata.snapshots
    result.snapshots_before = len(snapshots)
    current = table.metadata.current_snapshot_id
    cutoff_ms = int(older_than.timestamp() * 1000)
    expired = [s for s in snapshots if s.timestamp_ms < cutoff_ms and s.snapshot_id != current]
    result.snapshots_expired = len(expired)
    if expired and not result.dry_run:
        table.maintenance.expire_snapshots().older_than(older_than).commit()


# --------------------------------------------------------------------------- orphans


def object_key(storage: Storage, uri: str) -> str | None:
    """The storage key of a file URI the table references; None if outside `storage`."""
    parsed = urlparse(uri)
    if isinstance(storage, S3Storage):
        if parsed.scheme in ("s3", "s3a") and parsed.netloc == storage.bucket:
            return parsed.path.lstrip("/")
        return None
    if isinstance(storage, LocalStorage):
        path = unquote(parsed.path) if parsed.scheme == "file" else uri
        root = str(storage.root).rstrip("/") + "/"
        return path[len(root) :] if path.startswith(root) else None
    return None


def referenced_keys(storage: Storage, table: Table) -> set[str]:
    """Every file the table's metadata reaches: metadata files, manifest lists, manifests,
    data and delete files of every live snapshot."""
    metadata = table.metadata
    uris = {table.metadata_location, *(e.metadata_file for e in metadata.metadata_log)}
    uris.update(s.statistics_path for s in metadata.statistics)
    uris.update(s.statistics_path for s in metadata.partition_statistics)
    manifests: dict[str, Any] = {}
    for snapshot in metadata.snapshots:
        uris.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            manifests[manifest.manifest_path] = manifest
    for path, manifest in manifests.items():
        uris.add(path)
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            uris.add(entry.data_file.file_path)
    keys = {object_key(storage, u) for u in uris}
    keys.discard(None)
    return keys  # type: ignore[return-value]


def remove_orphans(
    storage: Storage, table: Table, older_than: datetime, result: MaintainResult
) -> None:
    """Delete files under the table's data/ and metadata/ that no metadata reaches and that
    are older than `older_than` (younger ones may belong to a commit in flight)."""
    # List first, then read the metadata: a file committed in between is seen as referenced.
    listed = [o for prefix in TABLE_DIRS for o in storage.list(prefix)]
    table.refresh()
    live = referenced_keys(storage, table)
    for obj in listed:
        if obj.key in live or obj.last_modified >= older_than:
            continue
        if not result.dry_run:
            storage.delete(obj.key)
        result.orphans_removed.append(obj.key)
        result.orphan_bytes += obj.size
