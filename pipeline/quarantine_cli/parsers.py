"""The `quarantine` and `report` sub-commands' arguments, one function per sub-command."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pipeline.quarantine_cli.common import DAY_HELP, EXIT_HELP, TARGET_HELP
from pipeline.quarantine_cli.entries import cmd_export, cmd_show
from pipeline.quarantine_cli.replay import cmd_purge, cmd_replay
from pipeline.quarantine_cli.summary import cmd_report, cmd_summary


def _day(text: str) -> date:
    today = datetime.now(UTC).date()
    if text == "today":
        return today
    m = re.fullmatch(r"(\d{1,5})d", text)
    if m:
        return today - timedelta(days=int(m[1]))
    try:
        return date.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"expected YYYY-MM-DD, 'today' or Nd (days ago), got {text!r}"
        ) from e


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from e
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _reference(text: str) -> str | datetime:
    if text in ("landed", "now"):
        return text
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"expected 'landed', 'now' or an ISO-8601 instant, got {text!r}"
        ) from e
    return value.replace(tzinfo=value.tzinfo or UTC).astimezone(UTC)


def _target_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("target (one of)")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--lake", metavar="DIR", help="local lake directory (default: ./lake)")
    where.add_argument("--bucket", metavar="NAME", help="S3 bucket of a deployed stack")
    where.add_argument(
        "--stack",
        metavar="NAME",
        help="Pulumi stack (e.g. dev): its `bucket` output; needs the Pulumi CLI",
    )
    return parent


def _days_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group(
        "days (quarantine: landing day; processed rows: transaction day)"
    )
    group.add_argument("--since", type=_day, metavar="DAY", help=f"from this {DAY_HELP}")
    group.add_argument("--until", type=_day, metavar="DAY", help=f"up to this {DAY_HELP}")
    return parent


def _selection_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("which entries (all given filters must match)")
    group.add_argument("--day", type=_day, metavar="DAY", help=f"only this landing {DAY_HELP}")
    group.add_argument(
        "--rule",
        action="append",
        default=[],
        metavar="RULE",
        help="a failed rule: column:check as `summary` prints it (e.g. "
        "'price:type(number)'), a column ('price'), a check ('json_syntax') or a prefix "
        "('price:type'); repeatable",
    )
    group.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="KEY",
        help="raw source key, or a glob such as 'raw/dt=2026-11-26/*'; repeatable",
    )
    group.add_argument(
        "--entry-id", action="append", default=[], metavar="ID", help="an entry id; repeatable"
    )
    return parent


def register(sub: Any) -> None:
    """Add `quarantine` (summary, show, export, replay, purge) and `report` to the CLI."""
    target, days, select = _target_parent(), _days_parent(), _selection_parent()
    fmt = argparse.RawDescriptionHelpFormatter
    quarantine = sub.add_parser(
        "quarantine",
        help="review, export, replay and purge quarantined records",
        description="Tools for the quarantine/ prefix, on a local lake or a deployed bucket. "
        "Every entry holds the original record, the rules it broke and where it came from.\n\n"
        + TARGET_HELP,
        epilog=EXIT_HELP,
        formatter_class=fmt,
    )
    qsub = quarantine.add_subparsers(dest="quarantine_command", required=True, metavar="ACTION")
    _add_summary(qsub, [target, days])
    _add_show(qsub, [target, select, days])
    _add_export(qsub, [target, select, days])
    _add_replay(qsub, [target, select, days])
    _add_purge(qsub, [target])
    _add_report(sub, [target, days])


def _add_summary(qsub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """`quarantine summary`."""
    summary = qsub.add_parser(
        "summary",
        parents=parents,
        help="counts by day, rule and source; quarantine rate; top failing values",
        description="Counts quarantined entries by landing day, by rule (column:check) and by "
        "source file, with processed rows (from Parquet footers) to give the quarantine rate, "
        "and the most frequent failing values. Days: processed rows by transaction day "
        "(their partition), quarantined entries by the day their file landed.",
        epilog=EXIT_HELP,
    )
    summary.add_argument("--json", action="store_true", help="machine-readable output")
    summary.add_argument(
        "--top", type=_count, default=10, help="rows of sources and values (default: 10)"
    )
    summary.set_defaults(func=cmd_summary)


def _add_show(qsub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """`quarantine show`."""
    show = qsub.add_parser(
        "show",
        parents=parents,
        help="print entries readably (record, errors, origin)",
        description="Print the selected entries: the original record (pretty-printed, "
        "exact numbers; raw text if it never parsed), each failed rule with its value, "
        "and where it came from (source key, version, line).",
        epilog="Example: pipeline quarantine show --rule category --limit 5",
    )
    show.add_argument(
        "--limit", type=_count, default=20, help="at most this many entries (default: 20)"
    )
    show.add_argument("--json", action="store_true", help="one JSON line per entry instead")
    show.set_defaults(func=cmd_show)


def _add_export(qsub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """`quarantine export`."""
    export = qsub.add_parser(
        "export",
        parents=parents,
        help="write selected entries to CSV or JSON Lines",
        description="Write the selected entries for a ticket or a spreadsheet. JSON Lines "
        "keeps each entry exactly (record verbatim) plus quarantine_key and landed_day; CSV "
        "has one row per entry, the errors as JSON and one column per contract field. In "
        "CSV, text starting with = + - @ is prefixed with ' so spreadsheets don't run it.",
    )
    export.add_argument(
        "--out", default="-", metavar="FILE", help="file to write, or - for stdout (default)"
    )
    export.add_argument(
        "--format",
        choices=("csv", "jsonl"),
        help="default: from the --out extension; jsonl on stdout",
    )
    export.add_argument("--limit", type=_count, default=None, help="at most this many entries")
    export.set_defaults(func=cmd_export)


def _add_replay(qsub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """`quarantine replay`."""
    replay = qsub.add_parser(
        "replay",
        parents=parents,
        help="re-validate entries against the current contract; move those that pass",
        description="Re-validate the selected entries with the transformer's own code and "
        "the current contract. Entries that pass are committed to the Iceberg table in "
        "processed/ (one commit per quarantine file, each row keeping its entry id) and "
        "then removed from their quarantine file; entries that still fail stay, with their "
        "errors updated. Running it again changes nothing. Interrupting it is safe: an "
        "entry is in the table or in quarantine/, and if it was cut between the two, readers "
        "count it once and the next replay finishes the move.\n\n"
        "Skipped: entries of a superseded source version (the transformer deletes them), "
        "sources the table holds no version of, and gzip-truncation entries (no record).",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument(
        "--reference-time",
        type=_reference,
        default="landed",
        metavar="WHEN",
        help="instant for the 'not after landing + 5 min' rule: 'landed' (default: the "
        "raw object's landing time, as the transformer used), 'now', or an ISO-8601 instant",
    )
    replay.add_argument("--dry-run", action="store_true", help="say what would move; write nothing")
    replay.add_argument("--json", action="store_true", help="machine-readable result")
    replay.add_argument("--quiet", action="store_true", help="no progress on stderr")
    replay.set_defaults(func=cmd_replay)


def _add_purge(qsub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """`quarantine purge`."""
    purge = qsub.add_parser(
        "purge",
        parents=parents,
        help="delete entries that landed more than N days ago",
        description="Delete quarantine files whose landing day (dt=) is more than N days "
        "before today (UTC): --older-than 30 keeps the last 30 days. Files with unreadable "
        "lines are kept and reported.",
        epilog=EXIT_HELP,
    )
    purge.add_argument(
        "--older-than", type=_count, required=True, metavar="DAYS", help="age in days"
    )
    purge.add_argument("--dry-run", action="store_true", help="list what would go; delete nothing")
    purge.add_argument("--json", action="store_true", help="machine-readable result")
    purge.set_defaults(func=cmd_purge)


def _add_report(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """`report`: the HTML data-quality report."""
    report = sub.add_parser(
        "report",
        parents=parents,
        help="write a self-contained HTML data-quality report",
        description="Write one HTML page (inline SVG charts, no network needed): records per "
        "day processed against quarantined, the quarantine rate over time, failures by rule, "
        "top failing values, sample records per rule and the contract. Its figures are those "
        "of `quarantine summary --json` (embedded as JSON in #report-data).\n\n" + TARGET_HELP,
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("--out", default="report.html", help="HTML file (default: report.html)")
    report.add_argument(
        "--samples", type=_count, default=5, help="sample records per rule (default: 5)"
    )
    report.add_argument("--top", type=_count, default=15, help="top failing values (default: 15)")
    report.set_defaults(func=cmd_report)
