"""Replay of the quarantine files of one source object: revalidate, commit, rewrite."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from handlers.core.entries import jsonable
from handlers.core.errors import PipelineError, StorageError
from handlers.core.storage import Storage
from pipeline.quarantine.model import (
    Item,
    Problem,
    QuarantineFile,
    Selection,
    entry_rules,
    iso,
    parse_instant,
    rule_label,
)
from pipeline.quarantine.results import FileOutcome, ReferenceTime, ReplayResult
from pipeline.quarantine.store import Copies, dump_entry, record_text

if TYPE_CHECKING:
    from handlers.core.seen import SeenIds

UNREPLAYABLE_CHECKS = frozenset({"gzip"})  # the bytes past a broken gzip stream are gone


def _canonical_errors(errors: Iterable[dict[str, Any]]) -> list[bytes]:
    return sorted(
        orjson.dumps(
            {"column": e.get("column"), "check": e.get("check"), "value": jsonable(e.get("value"))},
            option=orjson.OPT_SORT_KEYS,
        )
        for e in errors
    )


class SourceReplay:
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
        self.seen: SeenIds | None = None  # over this source's rows in the table, built on demand
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
        return parse_instant(entry.get("quarantined_at")) or self.now

    def _seen_ids(self) -> SeenIds:
        if self.seen is None:
            self.seen = _table_ids(self.storage, self.source_key)
        return self.seen

    def replay_file(
        self,
        qfile: QuarantineFile,
        moved_ids: dict[str, str],
        copies: Copies,
        outcome: FileOutcome,
    ) -> None:
        """Move the file's passing entries to the table, then rewrite the file without them."""
        result = self.result
        # A move an earlier run committed but did not finish: completing it is always right.
        reconciled = {
            i.entry["entry_id"]
            for i in qfile.items
            if i.entry is not None and i.entry["entry_id"] in moved_ids
        }
        candidates = self._candidates(qfile, moved_ids, copies, reconciled)
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
            result.moved_by_rule.update(entry_rules(move.entry))
        if self.dry_run or not (moving or reconciled or changed):
            return
        if moving:
            self._commit_rows(qfile, moving, outcome)
        self._rewrite(qfile, {*outcome.moved, *reconciled}, changed, outcome)

    def _candidates(
        self,
        qfile: QuarantineFile,
        moved_ids: dict[str, str],
        copies: Copies,
        reconciled: set[str],
    ) -> list[Item]:
        """The file's selected entries worth revalidating; the others counted as skipped."""
        result = self.result
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
        return candidates

    def _revalidate(
        self, items: list[Item], outcome: FileOutcome
    ) -> tuple[list[_Move], dict[int, list[dict[str, Any]]]]:
        """The transformer's own validation (`validate_records`), per reference time.

        Returns the entries that pass, and the new errors of those whose errors changed
        (keyed by the item's position in the file).
        """
        from handlers.core.transform import validate_records

        # File order, so the first of two equal transaction ids is the one kept.
        items = sorted(items, key=lambda i: (_int(_entry(i).get("record_index")), i.line_no))
        by_reference: dict[datetime, list[Item]] = defaultdict(list)
        for item in items:
            by_reference[self._reference_time(_entry(item))].append(item)
        moving: list[_Move] = []
        new_errors: dict[int, list[dict[str, Any]]] = {}
        for reference_time, group in sorted(by_reference.items()):
            verdicts = validate_records(
                [record_text(_entry(i), i.raw) for i in group],
                reference_time=reference_time,
                seen=self._seen_ids,
            )
            for item, verdict in zip(group, verdicts, strict=True):
                if verdict.row is None:
                    new_errors[item.line_no] = verdict.errors
                else:
                    moving.append(_Move(item, verdict.row, reference_time))
        changed = self._still_failing(items, new_errors, outcome)
        moving.sort(key=lambda m: m.item.line_no)
        return moving, changed

    def _still_failing(
        self,
        items: list[Item],
        new_errors: dict[int, list[dict[str, Any]]],
        outcome: FileOutcome,
    ) -> dict[int, list[dict[str, Any]]]:
        """Count the entries that still fail; the new errors of those whose errors changed."""
        changed: dict[int, list[dict[str, Any]]] = {}
        for item in items:
            if item.line_no not in new_errors:
                continue
            outcome.still_failing += 1
            self.result.still_failing += 1
            errors = new_errors[item.line_no]
            self.result.failing_by_rule.update(
                list(dict.fromkeys(rule_label(e["column"], e["check"]) for e in errors))
            )
            if _canonical_errors(errors) != _canonical_errors(_entry(item)["errors"]):
                changed[item.line_no] = errors
        return changed

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
        stamp = iso(self.now)
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
                lines.append(dump_entry(updated))
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
    def entry(self) -> dict[str, Any]:
        return _entry(self.item)

    @property
    def entry_id(self) -> str:
        return str(self.entry["entry_id"])


def _entry(item: Item) -> dict[str, Any]:
    """The entry of an item replay works on (it only ever picks readable lines)."""
    assert item.entry is not None
    return item.entry


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _table_ids(storage: Storage, source_key: str) -> SeenIds:
    """SeenIds holding every transaction id the table holds for this source."""
    from pyiceberg.expressions import EqualTo

    from handlers.core.seen import SeenIds
    from handlers.core.table import load_table

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
