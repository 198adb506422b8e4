"""`quarantine show` and `quarantine export`: selected entries, readable or as files."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path
from typing import Any

import orjson

from handlers.core.entries import jsonable
from handlers.core.errors import UsageError
from pipeline import quarantine as q
from pipeline.quarantine_cli.common import open_target, report_problems, safe, say, selection_of


def cmd_show(args: argparse.Namespace) -> int:
    storage = open_target(args)
    selection = selection_of(args)
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
        say("no entries match")
    elif more:
        say(f"showing the first {shown}; raise --limit to see more")
    return report_problems(problems)


def _format_entry(qfile: q.QuarantineFile, item: q.Item) -> str:
    entry = item.entry
    assert entry is not None
    head = f"── {entry['entry_id']} "
    lines = [head + "─" * max(4, 78 - len(head))]
    lines.append(f"  file     {qfile.key} (line {item.line_no})")
    where = f"line {entry.get('line')}" if entry.get("line") is not None else "inside a document"
    lines.append(
        f"  source   {safe(entry['source_key'])}  {where}, record #{entry.get('record_index')}"
        f"  (version {safe(str(entry['source_version']))[:16]})"
    )
    lines.append(
        f"  landed   {qfile.day}   quarantined {entry.get('quarantined_at')}   "
        f"contract {entry.get('schema_version')}"
        + (f"   revalidated {entry['revalidated_at']}" if entry.get("revalidated_at") else "")
    )
    for n, error in enumerate(entry["errors"]):
        label = "errors" if n == 0 else ""
        rule = q.rule_label(error.get("column"), str(error.get("check")))
        lines.append(f"  {label:<8} {safe(rule)}  value {safe(q.value_text(error.get('value')))}")
    if entry.get("detail"):
        lines.append(f"  detail   {safe(entry['detail'])}")
    record = entry.get("record")
    if entry.get("record_is_raw_text"):
        note = " (not valid UTF-8: shown with replacements)" if "record_base64" in entry else ""
        lines.append(f"  record   raw text{note}:")
        lines.append("    " + safe(str(record)))
    else:
        pretty = orjson.dumps(jsonable(record), option=orjson.OPT_INDENT_2).decode("utf-8")
        lines.append("  record")
        lines.extend("    " + safe(line) for line in pretty.splitlines())
    return "\n".join(lines) + "\n"


def cmd_export(args: argparse.Namespace) -> int:
    storage = open_target(args)
    selection = selection_of(args)
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
                writer.writerow({k: csv_cell(v) for k, v in row.items()})
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
    say(f"exported {count} entries to {where} ({fmt})")
    return report_problems(problems)


def _format_from(path: str) -> str:
    if path == "-":
        return "jsonl"  # stdout: one entry per line, as the help promises
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise UsageError(f"cannot tell the format from {path!r}: pass --format csv|jsonl")


def csv_cell(value: Any) -> Any:
    # A cell starting with = + - @ is a formula to a spreadsheet; records are untrusted.
    # Numbers such as -5.00 stay as they are.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value
