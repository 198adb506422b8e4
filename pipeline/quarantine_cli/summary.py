"""`quarantine summary` and `report`: the quarantine counted, as text, JSON or HTML."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from handlers.core.errors import PipelineError
from pipeline import quarantine as q
from pipeline.quarantine_cli.common import (
    dump,
    open_target,
    pct,
    report_problems,
    safe,
    say,
    selection_of,
    text_table,
)


def cmd_summary(args: argparse.Namespace) -> int:
    storage = open_target(args)
    selection = selection_of(args)
    summary = q.summarise(storage, selection.since, selection.until, top=args.top)
    data = summary.to_dict()
    if args.json:
        print(dump(data))
        return report_problems(summary.problems)
    _print_totals(data, storage.url)
    _print_tables(data, args.top)
    return report_problems(summary.problems)


def _print_totals(data: dict[str, Any], url: str) -> None:
    totals = data["totals"]
    period = (
        f"{data['since'] or 'start'} .. {data['until'] or 'now'}"
        if data["since"] or data["until"]
        else "all days"
    )
    print(f"Quarantine summary for {url} ({period})")
    print(
        f"records {totals['records']:,}   processed {totals['processed']:,}   "
        f"quarantined {totals['quarantined']:,}   "
        f"quarantine rate {pct(totals['quarantine_rate'])}"
    )
    if totals["pending_reconciliation"]:
        print(
            f"{totals['pending_reconciliation']} replayed entries still listed in quarantine "
            "(an interrupted replay; counted as processed; `replay` completes the move)"
        )


def _print_tables(data: dict[str, Any], top: int) -> None:
    print("\nBy day (processed: transaction day; quarantined: landing day)")
    print(
        text_table(
            ["day", "processed", "quarantined", "rate"],
            [
                [d["day"], d["processed"], d["quarantined"], pct(d["quarantine_rate"])]
                for d in data["by_day"]
            ],
        )
    )
    print("\nBy rule (entries; one entry can break several rules)")
    print(
        text_table(
            ["rule", "entries", "share"],
            [[r["rule"], r["entries"], pct(r["share_of_quarantined"])] for r in data["by_rule"]],
        )
    )
    sources = sorted(data["by_source"], key=lambda s: (-s["quarantined"], s["source_key"]))
    shown = sources[:top]
    print(f"\nBy source file (top {len(shown)} of {len(sources)} by quarantined)")
    print(
        text_table(
            ["source", "processed", "quarantined", "rate"],
            [
                [s["source_key"], s["processed"], s["quarantined"], pct(s["quarantine_rate"])]
                for s in shown
            ],
        )
    )
    print("\nMost frequent failing values")
    print(
        text_table(
            ["rule", "value", "count"],
            [[v["rule"], safe(v["value"]), v["count"]] for v in data["top_values"]],
        )
    )


def cmd_report(args: argparse.Namespace) -> int:
    from pipeline.report import render_report

    storage = open_target(args)
    selection = selection_of(args)
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
    say(
        f"wrote {out} ({len(html_text.encode()):,} bytes): {totals['records']:,} records, "
        f"{totals['quarantined']:,} quarantined ({pct(totals['quarantine_rate'])})"
    )
    return report_problems(summary.problems)
