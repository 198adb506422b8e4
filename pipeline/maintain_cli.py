"""`python -m pipeline maintain`: compact the table, expire snapshots, remove orphan files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from handlers.core.errors import ConfigError
from handlers.core.maintain import (
    DEFAULT_ORPHAN_MIN_AGE_HOURS,
    DEFAULT_SNAPSHOT_RETENTION_HOURS,
    DEFAULT_TARGET_FILE_MB,
    MIN_ORPHAN_AGE_HOURS,
    MaintainResult,
    MaintainSettings,
    maintain,
)
from handlers.core.storage import LocalStorage, S3Storage, Storage

EXIT_OK = 0
EXIT_USAGE = 2


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _number(kind: type, *, minimum: float) -> Any:
    label = "whole number" if kind is int else "number"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"expected a {label}, got {text!r}") from e
        if value != value or value < minimum:  # NaN compares false with everything
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {text}")
        return value

    return parse


def _storage(args: argparse.Namespace) -> Storage:
    if args.bucket:
        bucket = args.bucket.removeprefix("s3://").strip("/")
        if not bucket or "/" in bucket:
            raise ConfigError("--bucket", f"expected a bucket name, got {args.bucket!r}")
        return S3Storage(bucket)
    lake = Path(args.lake)
    if not lake.is_dir():
        raise ConfigError("--lake", f"no lake at {lake} (run `python -m pipeline run` first)")
    return LocalStorage(lake)


def _print_summary(result: MaintainResult) -> None:
    verb = "would " if result.dry_run else ""
    print(
        f"compaction: {len(result.partitions)} partition(s) {verb}go from "
        f"{result.files_before} to {result.files_after} data files "
        f"({result.commits} commit(s), {result.conflicts} conflict(s) retried)"
    )
    for p in result.partitions:
        where = "/".join(f"{k}={v}" for k, v in p.partition.items())
        print(
            f"  {where:<24} {p.files_before:>6} -> {p.files_after:<4} files "
            f"{p.bytes_before:>14,} -> {p.bytes_after:,} bytes  {p.rows:,} rows"
        )
    expired = "would expire" if result.dry_run else "expired"
    print(f"snapshots: {result.snapshots_before}, {expired} {result.snapshots_expired}")
    removed = "would remove" if result.dry_run else "removed"
    print(f"orphan files: {removed} {len(result.orphans_removed)} ({result.orphan_bytes:,} bytes)")


def cmd_maintain(args: argparse.Namespace) -> int:
    try:
        storage = _storage(args)
        settings = MaintainSettings(
            target_file_mb=args.target_file_mb,
            snapshot_retention_hours=args.snapshot_retention_hours,
            orphan_min_age_hours=args.orphan_min_age_hours,
            dry_run=args.dry_run,
        )
    except ConfigError as e:
        print(f"error: {e.reason}", file=sys.stderr)
        return EXIT_USAGE
    result = maintain(storage, settings, on_progress=None if args.json else _progress)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        _print_summary(result)
    return EXIT_OK


def register(sub: Any) -> None:
    """Add `maintain` to the `python -m pipeline` subcommands."""
    m = sub.add_parser(
        "maintain",
        help="compact small files, expire old snapshots, remove orphan files",
        description="Maintain the processed/ Iceberg table: rewrite each partition's small "
        "data files into files of about --target-file-mb in one atomic commit per partition "
        "(a query sees the same rows before, during and after), expire snapshots older "
        "than the retention, then delete files under processed/data and processed/metadata "
        "that no live snapshot references and that are older than the minimum age. The "
        "scheduled maintenance Lambda runs the same code.",
    )
    where = m.add_mutually_exclusive_group()
    where.add_argument("--lake", default="lake", help="local lake directory (default: ./lake)")
    where.add_argument(
        "--bucket", help="an S3 bucket instead; its table is GLUE_DATABASE.ICEBERG_TABLE (env)"
    )
    m.add_argument(
        "--target-file-mb",
        type=_number(int, minimum=1),
        default=DEFAULT_TARGET_FILE_MB,
        help=f"size of compacted files on disk, 1..4096 (default: {DEFAULT_TARGET_FILE_MB}); "
        "files of 3/4 of it or more stay as they are",
    )
    m.add_argument(
        "--snapshot-retention-hours",
        type=_number(float, minimum=0.001),
        default=DEFAULT_SNAPSHOT_RETENTION_HOURS,
        help="expire snapshots older than this (default: "
        f"{DEFAULT_SNAPSHOT_RETENTION_HOURS:g}); the current snapshot always stays",
    )
    m.add_argument(
        "--orphan-min-age-hours",
        type=_number(float, minimum=MIN_ORPHAN_AGE_HOURS),
        default=DEFAULT_ORPHAN_MIN_AGE_HOURS,
        help="only delete unreferenced files older than this (default: "
        f"{DEFAULT_ORPHAN_MIN_AGE_HOURS:g}, at least {MIN_ORPHAN_AGE_HOURS:g}), so that files "
        "of a commit in flight are never removed",
    )
    m.add_argument(
        "--dry-run", action="store_true", help="report what would be done; change nothing"
    )
    m.add_argument("--json", action="store_true", help="print the result as JSON")
    m.set_defaults(func=cmd_maintain)
