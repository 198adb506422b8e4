"""`quarantine replay` and `quarantine purge`: the commands that change the lake."""

from __future__ import annotations

import argparse
import time

from pipeline import quarantine as q
from pipeline.quarantine_cli.common import (
    dump,
    open_target,
    report_problems,
    say,
    selection_of,
    text_table,
)


def cmd_replay(args: argparse.Namespace) -> int:
    storage = open_target(args)
    selection = selection_of(args)
    result = q.replay(
        storage,
        selection,
        reference=args.reference_time,
        dry_run=args.dry_run,
        progress=None if args.quiet else _progress_printer(args.dry_run),
    )
    if args.json:
        print(dump(result.to_dict()))
        return report_problems(result.problems)
    _print_replay(result, storage.url, args.dry_run)
    return report_problems(result.problems)


def _progress_printer(dry_run: bool) -> q.Progress:
    """A progress callback: files that changed, the last one, and one every 2 s or so."""
    last = [time.monotonic()]

    def progress(done: int, total: int, outcome: q.FileOutcome) -> None:
        moved, fixed = len(outcome.moved), len(outcome.reconciled)
        interesting = moved or fixed or outcome.errors_changed
        if not (interesting or done == total or time.monotonic() - last[0] > 2):
            return
        last[0] = time.monotonic()
        verb = "would move" if dry_run else "moved"
        detail = f"{moved} {verb}, {outcome.still_failing} still failing"
        if outcome.errors_changed:
            detail += f" ({outcome.errors_changed} with new errors)"
        if fixed:
            detail += f", {fixed} earlier moves completed"
        say(f"[{done:>{len(str(total))}}/{total}] {outcome.key}: {detail}")

    return progress


def _print_replay(result: q.ReplayResult, url: str, dry_run: bool) -> None:
    reference = {
        "landed": "each source's landing time (as the transformer)",
        "now": "now",
    }.get(result.reference, result.reference)
    print(
        f"Replay{' (dry run: nothing written)' if dry_run else ''} on {url}; "
        f"contract reference time: {reference}"
    )
    rows = [
        ["quarantine files scanned", result.files],
        ["entries selected", result.selected],
        ["would move to processed/" if dry_run else "moved to processed/", result.moved],
        ["still failing", result.still_failing],
        ["  with errors to update" if dry_run else "  errors updated", result.errors_changed],
        [
            "interrupted moves to complete" if dry_run else "interrupted moves completed",
            result.reconciled,
        ],
        ["skipped", sum(result.skipped.values())],
    ]
    print(text_table(["", "entries"], rows))
    for reason, n in sorted(result.skipped.items()):
        print(f"  skipped {n}: {reason}")
    if result.moved_by_rule:
        print(f"\n{'Would move' if dry_run else 'Moved'}, by the rule they had failed")
        print(text_table(["rule", "entries"], result.moved_by_rule.most_common()))
    if result.failing_by_rule:
        print("\nStill failing, by rule")
        print(text_table(["rule", "entries"], result.failing_by_rule.most_common()))
    outputs = result.outputs
    if outputs:
        print(f"\n{'Would write' if dry_run else 'Wrote'} {len(outputs)} processed file(s):")
        for key in outputs[:20]:
            print(f"  {key}")
        if len(outputs) > 20:
            print(f"  … and {len(outputs) - 20} more (see --json)")
    if not dry_run and not result.changed_anything:
        print("\nNothing changed.")


def cmd_purge(args: argparse.Namespace) -> int:
    storage = open_target(args)
    result = q.purge(storage, args.older_than, dry_run=args.dry_run)
    if args.json:
        print(dump(result.to_dict()))
        return report_problems(result.problems)
    verb = "Would remove" if args.dry_run else "Removed"
    print(
        f"{verb} {result.entries} entries in {len(result.files)} file(s) that landed before "
        f"{result.cutoff} from {storage.url}"
    )
    if result.already_replayed:
        print(f"({result.already_replayed} more were already in processed/ from a replay)")
    if result.by_day:
        print(text_table(["landing day", "entries"], sorted(result.by_day.items())))
    return report_problems(result.problems)
