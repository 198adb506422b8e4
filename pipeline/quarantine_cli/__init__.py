"""`pipeline quarantine …` and `pipeline report`: review the quarantine."""

from __future__ import annotations

from pipeline.quarantine_cli.common import EXIT_ERROR, EXIT_OK, open_target, stack_bucket
from pipeline.quarantine_cli.entries import cmd_export, cmd_show, csv_cell
from pipeline.quarantine_cli.parsers import register
from pipeline.quarantine_cli.replay import cmd_purge, cmd_replay
from pipeline.quarantine_cli.summary import cmd_report, cmd_summary

__all__ = [
    "EXIT_ERROR",
    "EXIT_OK",
    "cmd_export",
    "cmd_purge",
    "cmd_replay",
    "cmd_report",
    "cmd_show",
    "cmd_summary",
    "csv_cell",
    "open_target",
    "register",
    "stack_bucket",
]
