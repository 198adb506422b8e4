"""Quarantine review on any Storage: select, summarise, export, replay and purge entries."""

from __future__ import annotations

from pipeline.quarantine.export import EXPORT_FIELDS, export_json_line, export_row, open_output
from pipeline.quarantine.model import (
    EVERY_ENTRY,
    Item,
    Problem,
    QuarantineFile,
    QuarantineRef,
    Selection,
    entry_rules,
    known_rule_labels,
    rule_label,
    unknown_rules,
    value_text,
)
from pipeline.quarantine.purge import PurgeResult, purge
from pipeline.quarantine.replay import replay
from pipeline.quarantine.results import FileOutcome, Progress, ReferenceTime, ReplayResult
from pipeline.quarantine.source import UNREPLAYABLE_CHECKS
from pipeline.quarantine.state import TableFigures, TableState, load_state, table_figures
from pipeline.quarantine.store import (
    list_quarantine,
    parse_quarantine,
    quarantine_ref,
    read_quarantine,
    record_text,
    select_entries,
)
from pipeline.quarantine.summary import Summary, summarise

__all__ = [
    "EVERY_ENTRY",
    "EXPORT_FIELDS",
    "UNREPLAYABLE_CHECKS",
    "FileOutcome",
    "Item",
    "Problem",
    "Progress",
    "PurgeResult",
    "QuarantineFile",
    "QuarantineRef",
    "ReferenceTime",
    "ReplayResult",
    "Selection",
    "Summary",
    "TableFigures",
    "TableState",
    "entry_rules",
    "export_json_line",
    "export_row",
    "known_rule_labels",
    "list_quarantine",
    "load_state",
    "open_output",
    "parse_quarantine",
    "purge",
    "quarantine_ref",
    "read_quarantine",
    "record_text",
    "replay",
    "rule_label",
    "select_entries",
    "summarise",
    "table_figures",
    "unknown_rules",
    "value_text",
]
