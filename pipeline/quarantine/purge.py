"""`purge`: delete quarantine files that landed more than N days ago."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from handlers.core.storage import Storage
from pipeline.quarantine.model import Problem, Selection
from pipeline.quarantine.state import load_state
from pipeline.quarantine.store import list_quarantine, read_quarantine


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
