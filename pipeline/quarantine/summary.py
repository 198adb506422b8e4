"""`summary`: the quarantine counted against the table, per day, rule and source."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from handlers.core.storage import Storage
from pipeline.quarantine.model import (
    Problem,
    QuarantineFile,
    Selection,
    iso,
    parse_instant,
    rule_label,
    value_text,
)
from pipeline.quarantine.state import load_state, table_figures
from pipeline.quarantine.store import Copies, list_quarantine, read_quarantine


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
            "generated_at": iso(self.generated_at),
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
                        "transformed_at": iso(self.source_time[s])
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
    copies = Copies()
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
    at = parse_instant(entry.get("quarantined_at"))
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
