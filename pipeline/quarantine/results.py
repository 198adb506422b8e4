"""What a replay run did, per file and in total: the figures `replay --json` prints."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.quarantine.model import Problem


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
