"""`pipeline quarantine …` and `pipeline report`: review the quarantine."""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from handlers.core.entries import jsonable
from handlers.core.errors import ConfigError, PipelineError, UsageError
from handlers.core.storage import LocalStorage, Storage, open_storage
from pipeline import quarantine as q

EXIT_OK = 0
EXIT_ERROR = 1
REPO_ROOT = Path(__file__).resolve().parent.parent

_TARGET_HELP = (
    "Target: a local lake (--lake DIR, default ./lake), a bucket (--bucket NAME; honours "
    "AWS_ENDPOINT_URL and the usual AWS credentials) or a deployed Pulumi stack (--stack "
    "NAME reads `pulumi stack output bucket`)."
)
_EXIT_HELP = (
    "Exit codes: 0 done; 1 operational error, or some quarantine/processed files could not "
    "be read (they are listed on stderr; everything readable was still handled); 2 bad "
    "arguments."
)
_DAY_HELP = "day YYYY-MM-DD (inclusive), 'today', or Nd for N days ago"


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- arguments


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
    group.add_argument("--since", type=_day, metavar="DAY", help=f"from this {_DAY_HELP}")
    group.add_argument("--until", type=_day, metavar="DAY", help=f"up to this {_DAY_HELP}")
    return parent


def _selection_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("which entries (all given filters must match)")
    group.add_argument("--day", type=_day, metavar="DAY", help=f"only this landing {_DAY_HELP}")
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


def open_target(args: argparse.Namespace) -> Storage:
    """The lake or bucket the arguments name."""
    if getattr(args, "bucket", None):
        return open_storage(f"s3://{args.bucket}")
    if getattr(args, "stack", None):
        return open_storage(f"s3://{stack_bucket(args.stack)}")
    lake = getattr(args, "lake", None) or "lake"
    if lake.startswith("s3://"):
        return open_storage(lake)
    if not Path(lake).is_dir():
        raise PipelineError(f"no lake at {lake} (run `pipeline run --lake {lake}`)")
    return LocalStorage(lake)


def stack_bucket(stack: str) -> str:
    """The `bucket` output of a Pulumi stack, through the Pulumi CLI."""
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise ConfigError(
            "--stack", "the Pulumi CLI is not installed or not on PATH; pass --bucket NAME"
        )
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [pulumi, "stack", "output", "bucket", "--stack", stack, "--cwd", str(REPO_ROOT)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConfigError("--stack", f"pulumi failed: {e}") from e
    bucket = done.stdout.strip()
    if done.returncode != 0 or not bucket:
        detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError("--stack", f"`pulumi stack output bucket --stack {stack}`: {detail}")
    return bucket


def _selection(args: argparse.Namespace) -> q.Selection:
    since, until = getattr(args, "since", None), getattr(args, "until", None)
    if getattr(args, "day", None):
        since = until = args.day
    if since and until and since > until:
        raise PipelineError(f"--since {since} is after --until {until}")
    unknown = q.unknown_rules(getattr(args, "rule", []) or ())
    if unknown:
        # A typo would otherwise answer "no entries match", which reads as good news.
        known = "\n  ".join(q.known_rule_labels())
        raise UsageError(
            f"--rule {unknown[0]!r} matches no rule of the contract; the rules are "
            f"(a column, a check or a prefix of one selects them too):\n  {known}"
        )
    return q.Selection(
        since=since,
        until=until,
        rules=tuple(getattr(args, "rule", []) or ()),
        sources=tuple(getattr(args, "source", []) or ()),
        entry_ids=frozenset(getattr(args, "entry_id", []) or ()),
    )


def _report_problems(problems: Sequence[q.Problem]) -> int:
    """Print problems to stderr; EXIT_ERROR when some data could not be read."""
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity != "error"]
    for p in warnings[:20]:
        _progress(str(p))
    if len(warnings) > 20:
        _progress(f"warning: {len(warnings) - 20} more ignored objects")
    for p in errors[:50]:
        _progress(str(p))
    if len(errors) > 50:
        _progress(f"error: {len(errors) - 50} more unreadable objects or lines")
    if errors:
        _progress(
            f"error: {len(errors)} problem(s) reading the lake; results cover what was readable"
        )
        return EXIT_ERROR
    return EXIT_OK


# --------------------------------------------------------------------------- output helpers


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    from pipeline.query import format_table

    return format_table(headers, rows)


def _pct(rate: float) -> str:
    return f"{rate:.2%}"


def _safe(text: str) -> str:
    """Untrusted text for a terminal: control characters (ANSI escapes…) made visible."""
    return "".join(
        c if c in "\n" or (c.isprintable() or c == " ") else repr(c)[1:-1] for c in str(text)
    )


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


# --------------------------------------------------------------------------- commands


def cmd_summary(args: argparse.Namespace) -> int:
    storage = open_target(args)
    selection = _selection(args)
    summary = q.summarise(storage, selection.since, selection.until, top=args.top)
    data = summary.to_dict()
    if args.json:
        print(_dump(data))
        return _report_problems(summary.problems)
    totals = data["totals"]
    period = (
        f"{data['since'] or 'start'} .. {data['until'] or 'now'}"
        if data["since"] or data["until"]
        else "all days"
    )
    print(f"Quarantine summary for {storage.url} ({period})")
    print(
        f"records {totals['records']:,}   processed {totals['processed']:,}   "
        f"quarantined {totals['quarantined']:,}   "
        f"quarantine rate {_pct(totals['quarantine_rate'])}"
    )
    if totals["pending_reconciliation"]:
        print(
            f"{totals['pending_reconciliation']} replayed entries still listed in quarantine "
            "(an interrupted replay; counted as processed; `replay` completes the move)"
        )
    print("\nBy day (processed: transaction day; quarantined: landing day)")
    print(
        _table(
            ["day", "processed", "quarantined", "rate"],
            [
                [d["day"], d["processed"], d["quarantined"], _pct(d["quarantine_rate"])]
                for d in data["by_day"]
            ],
        )
    )
    print("\nBy rule (entries; one entry can break several rules)")
    print(
        _table(
            ["rule", "entries", "share"],
            [[r["rule"], r["entries"], _pct(r["share_of_quarantined"])] for r in data["by_rule"]],
        )
    )
    sources = sorted(data["by_source"], key=lambda s: (-s["quarantined"], s["source_key"]))
    shown = sources[: args.top]
    print(f"\nBy source file (top {len(shown)} of {len(sources)} by quarantined)")
    print(
        _table(
            ["source", "processed", "quarantined", "rate"],
            [
                [s["source_key"], s["processed"], s["quarantined"], _pct(s["quarantine_rate"])]
                for s in shown
            ],
        )
    )
    print("\nMost frequent failing values")
    print(
        _table(
            ["rule", "value", "count"],
            [[v["rule"], _safe(v["value"]), v["count"]] for v in data["top_values"]],
        )
    )
    return _report_problems(summary.problems)


def cmd_show(args: argparse.Namespace) -> int:
    storage = open_target(args)
    selection = _selection(args)
    problems: list[q.Problem] = []
    shown = 0
    more = False
    for qfile, item in q.select_entries(storage, selection, problems):
        if shown >= args.limit:
            more = True
            break
        if args.json:
            sys.stdout.write(q.export_json_line(qfile, item).decode("utf-8"))
        else:
            print(_format_entry(qfile, item))
        shown += 1
    if not shown:
        _progress("no entries match")
    elif more:
        _progress(f"showing the first {shown}; raise --limit to see more")
    return _report_problems(problems)


def _format_entry(qfile: q.QuarantineFile, item: q.Item) -> str:
    entry = item.entry
    assert entry is not None
    head = f"── {entry['entry_id']} "
    lines = [head + "─" * max(4, 78 - len(head))]
    lines.append(f"  file     {qfile.key} (line {item.line_no})")
    where = f"line {entry.get('line')}" if entry.get("line") is not None else "inside a document"
    lines.append(
        f"  source   {_safe(entry['source_key'])}  {where}, record #{entry.get('record_index')}"
        f"  (version {_safe(str(entry['source_version']))[:16]})"
    )
    lines.append(
        f"  landed   {qfile.day}   quarantined {entry.get('quarantined_at')}   "
        f"contract {entry.get('schema_version')}"
        + (f"   revalidated {entry['revalidated_at']}" if entry.get("revalidated_at") else "")
    )
    for n, error in enumerate(entry["errors"]):
        label = "errors" if n == 0 else ""
        rule = q.rule_label(error.get("column"), str(error.get("check")))
        lines.append(f"  {label:<8} {_safe(rule)}  value {_safe(q.value_text(error.get('value')))}")
    if entry.get("detail"):
        lines.append(f"  detail   {_safe(entry['detail'])}")
    record = entry.get("record")
    if entry.get("record_is_raw_text"):
        note = " (not valid UTF-8: shown with replacements)" if "record_base64" in entry else ""
        lines.append(f"  record   raw text{note}:")
        lines.append("    " + _safe(str(record)))
    else:
        pretty = orjson.dumps(jsonable(record), option=orjson.OPT_INDENT_2).decode("utf-8")
        lines.append("  record")
        lines.extend("    " + _safe(line) for line in pretty.splitlines())
    return "\n".join(lines) + "\n"


def cmd_export(args: argparse.Namespace) -> int:
    storage = open_target(args)
    selection = _selection(args)
    fmt = args.format or _format_from(args.out)
    problems: list[q.Problem] = []
    out = q.open_output(args.out)
    count = 0
    try:
        if fmt == "csv":
            from schemas import FIELDS

            text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
            writer = csv.DictWriter(
                text, fieldnames=[*q.EXPORT_FIELDS, *(f"record.{f}" for f in FIELDS)]
            )
            writer.writeheader()
            for qfile, item in q.select_entries(storage, selection, problems):
                if args.limit is not None and count >= args.limit:
                    break
                row = q.export_row(qfile, item)
                writer.writerow({k: _csv_cell(v) for k, v in row.items()})
                count += 1
            text.flush()
            text.detach()
        else:
            for qfile, item in q.select_entries(storage, selection, problems):
                if args.limit is not None and count >= args.limit:
                    break
                out.write(q.export_json_line(qfile, item))
                count += 1
        out.flush()
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    where = "stdout" if args.out == "-" else args.out
    _progress(f"exported {count} entries to {where} ({fmt})")
    return _report_problems(problems)


def _format_from(path: str) -> str:
    if path == "-":
        return "jsonl"  # stdout: one entry per line, as the help promises
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise UsageError(f"cannot tell the format from {path!r}: pass --format csv|jsonl")


def _csv_cell(value: Any) -> Any:
    # A cell starting with = + - @ is a formula to a spreadsheet; records are untrusted.
    # Numbers such as -5.00 stay as they are.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


def cmd_replay(args: argparse.Namespace) -> int:
    storage = open_target(args)
    selection = _selection(args)
    last = [time.monotonic()]

    def progress(done: int, total: int, outcome: q.FileOutcome) -> None:
        moved, fixed = len(outcome.moved), len(outcome.reconciled)
        interesting = moved or fixed or outcome.errors_changed
        if not (interesting or done == total or time.monotonic() - last[0] > 2):
            return
        last[0] = time.monotonic()
        verb = "would move" if args.dry_run else "moved"
        detail = f"{moved} {verb}, {outcome.still_failing} still failing"
        if outcome.errors_changed:
            detail += f" ({outcome.errors_changed} with new errors)"
        if fixed:
            detail += f", {fixed} earlier moves completed"
        _progress(f"[{done:>{len(str(total))}}/{total}] {outcome.key}: {detail}")

    result = q.replay(
        storage,
        selection,
        reference=args.reference_time,
        dry_run=args.dry_run,
        progress=None if args.quiet else progress,
    )
    if args.json:
        print(_dump(result.to_dict()))
        return _report_problems(result.problems)
    reference = {
        "landed": "each source's landing time (as the transformer)",
        "now": "now",
    }.get(result.reference, result.reference)
    print(
        f"Replay{' (dry run: nothing written)' if args.dry_run else ''} on {storage.url}; "
        f"contract reference time: {reference}"
    )
    rows = [
        ["quarantine files scanned", result.files],
        ["entries selected", result.selected],
        ["would move to processed/" if args.dry_run else "moved to processed/", result.moved],
        ["still failing", result.still_failing],
        ["  with errors to update" if args.dry_run else "  errors updated", result.errors_changed],
        [
            "interrupted moves to complete" if args.dry_run else "interrupted moves completed",
            result.reconciled,
        ],
        ["skipped", sum(result.skipped.values())],
    ]
    print(_table(["", "entries"], rows))
    for reason, n in sorted(result.skipped.items()):
        print(f"  skipped {n}: {reason}")
    if result.moved_by_rule:
        print(f"\n{'Would move' if args.dry_run else 'Moved'}, by the rule they had failed")
        print(_table(["rule", "entries"], result.moved_by_rule.most_common()))
    if result.failing_by_rule:
        print("\nStill failing, by rule")
        print(_table(["rule", "entries"], result.failing_by_rule.most_common()))
    outputs = result.outputs
    if outputs:
        print(f"\n{'Would write' if args.dry_run else 'Wrote'} {len(outputs)} processed file(s):")
        for key in outputs[:20]:
            print(f"  {key}")
        if len(outputs) > 20:
            print(f"  … and {len(outputs) - 20} more (see --json)")
    if not args.dry_run and not result.changed_anything:
        print("\nNothing changed.")
    return _report_problems(result.problems)


def cmd_purge(args: argparse.Namespace) -> int:
    storage = open_target(args)
    result = q.purge(storage, args.older_than, dry_run=args.dry_run)
    if args.json:
        print(_dump(result.to_dict()))
        return _report_problems(result.problems)
    verb = "Would remove" if args.dry_run else "Removed"
    print(
        f"{verb} {result.entries} entries in {len(result.files)} file(s) that landed before "
        f"{result.cutoff} from {storage.url}"
    )
    if result.already_replayed:
        print(f"({result.already_replayed} more were already in processed/ from a replay)")
    if result.by_day:
        print(_table(["landing day", "entries"], sorted(result.by_day.items())))
    return _report_problems(result.problems)


def cmd_report(args: argparse.Namespace) -> int:
    from pipeline.report import render_report

    storage = open_target(args)
    selection = _selection(args)
    summary = q.summarise(
        storage, selection.since, selection.until, top=args.top, samples_per_rule=args.samples
    )
    html_text = render_report(summary)
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".tmp-{out.name}")
        tmp.write_text(html_text, encoding="utf-8")
        tmp.replace(out)
    except OSError as e:
        raise PipelineError(f"cannot write {out}: {e.strerror or e}") from e
    totals = summary.to_dict()["totals"]
    _progress(
        f"wrote {out} ({len(html_text.encode()):,} bytes): {totals['records']:,} records, "
        f"{totals['quarantined']:,} quarantined ({_pct(totals['quarantine_rate'])})"
    )
    return _report_problems(summary.problems)


# --------------------------------------------------------------------------- registration


def register(sub: Any) -> None:
    """Add `quarantine` (summary, show, export, replay, purge) and `report` to the CLI."""
    target, days, select = _target_parent(), _days_parent(), _selection_parent()
    fmt = argparse.RawDescriptionHelpFormatter

    quarantine = sub.add_parser(
        "quarantine",
        help="review, export, replay and purge quarantined records",
        description="Tools for the quarantine/ prefix, on a local lake or a deployed bucket. "
        "Every entry holds the original record, the rules it broke and where it came from.\n\n"
        + _TARGET_HELP,
        epilog=_EXIT_HELP,
        formatter_class=fmt,
    )
    qsub = quarantine.add_subparsers(dest="quarantine_command", required=True, metavar="ACTION")

    summary = qsub.add_parser(
        "summary",
        parents=[target, days],
        help="counts by day, rule and source; quarantine rate; top failing values",
        description="Counts quarantined entries by landing day, by rule (column:check) and by "
        "source file, with processed rows (from Parquet footers) to give the quarantine rate, "
        "and the most frequent failing values. Days: processed rows by transaction day "
        "(their partition), quarantined entries by the day their file landed.",
        epilog=_EXIT_HELP,
    )
    summary.add_argument("--json", action="store_true", help="machine-readable output")
    summary.add_argument(
        "--top", type=_count, default=10, help="rows of sources and values (default: 10)"
    )
    summary.set_defaults(func=cmd_summary)

    show = qsub.add_parser(
        "show",
        parents=[target, select, days],
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

    export = qsub.add_parser(
        "export",
        parents=[target, select, days],
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

    replay = qsub.add_parser(
        "replay",
        parents=[target, select, days],
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
        epilog=_EXIT_HELP,
        formatter_class=fmt,
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

    purge = qsub.add_parser(
        "purge",
        parents=[target],
        help="delete entries that landed more than N days ago",
        description="Delete quarantine files whose landing day (dt=) is more than N days "
        "before today (UTC): --older-than 30 keeps the last 30 days. Files with unreadable "
        "lines are kept and reported.",
        epilog=_EXIT_HELP,
    )
    purge.add_argument(
        "--older-than", type=_count, required=True, metavar="DAYS", help="age in days"
    )
    purge.add_argument("--dry-run", action="store_true", help="list what would go; delete nothing")
    purge.add_argument("--json", action="store_true", help="machine-readable result")
    purge.set_defaults(func=cmd_purge)

    report = sub.add_parser(
        "report",
        parents=[target, days],
        help="write a self-contained HTML data-quality report",
        description="Write one HTML page (inline SVG charts, no network needed): records per "
        "day processed against quarantined, the quarantine rate over time, failures by rule, "
        "top failing values, sample records per rule and the contract. Its figures are those "
        "of `quarantine summary --json` (embedded as JSON in #report-data).\n\n" + _TARGET_HELP,
        epilog=_EXIT_HELP,
        formatter_class=fmt,
    )
    report.add_argument("--out", default="report.html", help="HTML file (default: report.html)")
    report.add_argument(
        "--samples", type=_count, default=5, help="sample records per rule (default: 5)"
    )
    report.add_argument("--top", type=_count, default=15, help="top failing values (default: 15)")
    report.set_defaults(func=cmd_report)
