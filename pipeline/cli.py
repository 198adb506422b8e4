"""`pipeline` (or `python -m pipeline`): the pipeline end to end on a local lake, or by steps."""

from __future__ import annotations

import argparse
import filecmp
import gc
import json
import os
import shlex
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from handlers.core.errors import PipelineError, StorageError, UsageError
from handlers.core.storage import RAW_PREFIX, LocalStorage, Storage

EXIT_OK = 0
EXIT_ERROR = 1  # operational failure: missing file, unwritable lake, bad query
EXIT_USAGE = 2  # argparse's own code for bad arguments

BATCH_MINUTES = 5
PROGRESS_FROM_BYTES = 64 * 1024 * 1024
LOCAL_BUCKET = "local-lake"


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def s3_event(bucket: str, key: str, size: int = 0, sequencer: str = "") -> dict[str, Any]:
    """The S3 ObjectCreated notification that S3 would send for `key`."""
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": size}
    if sequencer:
        obj["sequencer"] = sequencer  # S3's order of the key's events
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "eventTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": obj,
                },
            }
        ]
    }


def deliver(storage: Storage, key: str, on_progress: Callable[[Any], None] | None = None) -> Any:
    """Hand `key` to the transformer exactly as an S3 notification would."""
    from handlers.core.events import process_event

    outcome = process_event(
        s3_event(LOCAL_BUCKET, key), lambda _bucket: storage, on_progress=on_progress
    )
    if outcome.failed:
        raise PipelineError(outcome.failed[0]["reason"])
    if not outcome.results:
        reason = outcome.skipped[0]["reason"] if outcome.skipped else "nothing to do"
        raise PipelineError(f"{key}: not transformed ({reason})")
    return outcome.results[0]


def _positive(kind: Callable[[str], Any], lo: float, hi: float) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from e
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo} and {hi}, got {text}")
        return value

    return parse


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected an ISO-8601 time, got {text!r}") from e
    return value.replace(tzinfo=value.tzinfo or UTC).astimezone(UTC)


def cmd_run(args: argparse.Namespace) -> int:
    from handlers.generator import run_generator
    from pipeline.query import format_table, run_sql, sample_queries

    lake = LocalStorage(args.lake)
    end = args.end or datetime.now(UTC).replace(second=0, microsecond=0)
    end -= timedelta(minutes=end.minute % BATCH_MINUTES)
    started = time.perf_counter()
    totals: Counter[str] = Counter()
    by_check: Counter[str] = Counter()
    _progress(f"lake: {lake.root}")
    for n in range(args.batches):
        reference = end - timedelta(minutes=BATCH_MINUTES * (args.batches - 1 - n))
        batch = run_generator(
            lake,
            count=args.batch_size,
            seed=args.seed,
            reference_time=reference,
            fault_rate=args.fault_rate,
        )
        result = deliver(lake, batch["key"])
        totals.update(
            records_in=result.records_in,
            processed=result.processed,
            quarantined=result.quarantined,
        )
        by_check.update(result.quarantined_by_check)
        note = f" ({result.skipped})" if result.skipped else ""
        _progress(
            f"[{n + 1:>{len(str(args.batches))}}/{args.batches}] {batch['key']}: "
            f"{result.records_in} in -> {result.processed} processed, "
            f"{result.quarantined} quarantined{note}"
        )
    elapsed = time.perf_counter() - started
    print(
        f"\nPipeline: {args.batches} batches, {totals['records_in']} records in, "
        f"{totals['processed']} processed, {totals['quarantined']} quarantined "
        f"in {elapsed:.1f}s\n"
    )
    for path in sample_queries():
        headers, rows = run_sql(lake.root, str(path))
        print(f"== {path.stem} ==")
        print(format_table(headers, rows))
        print()
    print("== quarantine summary (this run) ==")
    rate = totals["quarantined"] / totals["records_in"] if totals["records_in"] else 0.0
    print(f"quarantine rate: {rate:.2%}")
    print(format_table(["rule", "failures"], by_check.most_common()))
    print(f"\nEntries are in {lake.root / 'quarantine'}; query the lake (in a new shell, here):")
    for command in query_hint(args.lake):
        print(f"  {command}")
    return EXIT_OK


def query_hint(lake: str) -> list[str]:
    """Commands that query `lake` as written in a fresh shell: activate this venv first."""
    query = ["pipeline", "query", "--lake", lake, "SELECT COUNT(*) FROM transactions"]
    commands = [shlex.join(query)]
    venv = Path(sys.prefix)
    if venv != Path(sys.base_prefix):
        where = Path(os.path.relpath(venv)) if venv.is_relative_to(Path.cwd()) else venv
        commands.insert(0, f". {shlex.quote(str(where / 'bin' / 'activate'))}")
    return commands


def cmd_generate(args: argparse.Namespace) -> int:
    from handlers.core.generate import generate_batch, to_ndjson
    from handlers.generator import run_generator

    reference = args.reference_time or datetime.now(UTC).replace(microsecond=0)
    if args.lake:
        summary = run_generator(
            LocalStorage(args.lake),
            count=args.count,
            seed=args.seed,
            reference_time=reference,
            fault_rate=args.fault_rate,
        )
        print(json.dumps(summary))
        return EXIT_OK
    lines = generate_batch(
        args.count, seed=args.seed, reference_time=reference, fault_rate=args.fault_rate
    )
    out = Path(args.out)
    try:
        with out.open("wb") as f:
            # Written in slices: a million records need not sit in memory twice.
            for start in range(0, len(lines), 10_000):
                f.write(to_ndjson(lines[start : start + 10_000]))
    except OSError as e:
        raise PipelineError(f"cannot write {out}: {e.strerror}") from e
    faults = sum(1 for g in lines if g.fault)
    _progress(f"wrote {len(lines)} records ({faults} with faults) to {out}")
    return EXIT_OK


def _readable_file(source: Path) -> Path:
    """The input file, or an error that names it (not the lake) and says what is wrong."""
    if source.is_dir():
        raise UsageError(f"{source} is a directory: pass one raw file (NDJSON, JSON, .gz)")
    if not source.is_file():
        raise PipelineError(f"no such file: {source}")
    try:
        with source.open("rb"):
            pass
    except OSError as e:
        raise PipelineError(f"cannot read input file {source}: {e.strerror or e}") from e
    return source


def cmd_transform(args: argparse.Namespace) -> int:
    source = _readable_file(Path(args.file))
    lake = LocalStorage(args.lake)
    key = f"{RAW_PREFIX}{source.name}"
    target = lake.root / key
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Identical content landing again is a redelivery (S3 gives it the same ETag):
        # keep the object as it is, so the transformer recognises the version. A file
        # already in raw/ is the object itself, so it is not read twice to learn that.
        same = target.is_file() and (
            target.samefile(source) or filecmp.cmp(source, target, shallow=False)
        )
        if not same:
            # Land it the way S3 would: a complete object appears at once.
            # Its own temporary name: concurrent runs of one file never share it.
            tmp = target.with_name(f".tmp-{target.name}.{os.getpid()}")
            try:
                shutil.copyfile(source, tmp)
                tmp.replace(target)
            finally:
                tmp.unlink(missing_ok=True)
    except OSError as e:
        raise PipelineError(f"cannot write to lake {lake.root}: {e.strerror or e}") from e
    size = target.stat().st_size
    started = time.perf_counter()

    def progress(running: Any) -> None:
        _progress(
            f"  {running.records_in:,} records ({running.processed:,} processed, "
            f"{running.quarantined:,} quarantined) in {time.perf_counter() - started:.1f}s"
        )

    # Big backfills say how far they are; a 5-minute batch finishes before it matters.
    result = deliver(lake, key, progress if size >= PROGRESS_FROM_BYTES else None)
    summary = result.to_dict()
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{key}: {result.records_in} records in, {result.processed} processed, "
            f"{result.quarantined} quarantined" + (f" ({result.skipped})" if result.skipped else "")
        )
        for rule, count in result.quarantined_by_check.most_common():
            print(f"  {count:>8}  {rule}")
        if result.replaced:
            print(replaced_note(key, result.replaced))
    return EXIT_OK


def replaced_note(key: str, replaced: dict[str, Any]) -> str:
    """Say that a new version of `key` took the place of the earlier one (the name is the key)."""
    hint = "The file name is the key: give each file a distinct name to keep both."
    if not replaced.get("complete", True):
        return f"note: replaced an unfinished earlier version of {key} (its partial output). {hint}"
    gone = replaced["processed"] + replaced["quarantined"]
    return (
        f"note: replaced an earlier version of {key}: its {gone} rows left the lake "
        f"({replaced['processed']} processed, {replaced['quarantined']} quarantined). {hint}"
    )


def cmd_query(args: argparse.Namespace) -> int:
    from pipeline.query import format_table, run_sql

    if not Path(args.lake).is_dir():
        raise PipelineError(f"no lake at {args.lake} (run `pipeline run --lake {args.lake}` first)")
    headers, rows = run_sql(args.lake, args.sql)
    print(format_table(headers, rows))
    return EXIT_OK


def cmd_contract(args: argparse.Namespace) -> int:
    from schemas.markdown import contract_markdown

    print(contract_markdown())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline",
        description=(
            "E-commerce transaction pipeline on a local lake: the same code the Lambdas "
            "run, with a directory standing in for S3 and DuckDB for Athena."
        ),
        epilog="Exit codes: 0 success (quarantined records are success), 1 operational "
        "error, 2 bad arguments.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="generate batches, transform them, query the result",
        description="End to end: generate 5-minute batches into raw/, deliver each to the "
        "transformer as an S3 event would, then run the sample queries with DuckDB and "
        "summarise the quarantine.",
    )
    run.add_argument("--lake", default="lake", help="lake directory (default: ./lake)")
    run.add_argument(
        "--batches",
        type=_positive(int, 1, 10_000),
        default=12,
        help="number of 5-minute batches (default: 12, one hour)",
    )
    run.add_argument(
        "--batch-size",
        type=_positive(int, 1, 1_000_000),
        default=200,
        help="records per batch (default: 200)",
    )
    run.add_argument(
        "--fault-rate",
        type=_positive(float, 0.0, 1.0),
        default=0.05,
        help="share of records with an injected fault (default: 0.05)",
    )
    run.add_argument(
        "--seed", type=_positive(int, 0, 2**63), default=42, help="generator seed (default: 42)"
    )
    run.add_argument(
        "--end", type=_instant, default=None, help="reference time of the last batch (default: now)"
    )
    run.set_defaults(func=cmd_run)

    gen = sub.add_parser(
        "generate",
        help="write synthetic transactions as NDJSON",
        description="Generate deterministic synthetic transactions (same seed and "
        "reference time, same records). Faults are labelled by the rule they break.",
    )
    gen.add_argument(
        "--count",
        type=_positive(int, 0, 50_000_000),
        default=1000,
        help="records to generate (default: 1000)",
    )
    gen.add_argument(
        "--seed",
        type=_positive(int, 0, 2**63),
        default=0,
        help="random seed; same seed and reference time, same records (default: 0)",
    )
    gen.add_argument(
        "--fault-rate",
        type=_positive(float, 0.0, 1.0),
        default=0.0,
        help="share of records with an injected fault, 0 to 1 (default: 0.0, all valid)",
    )
    gen.add_argument(
        "--reference-time",
        type=_instant,
        default=None,
        help="end of the batch window (default: now)",
    )
    where = gen.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", help="NDJSON file to write")
    where.add_argument("--lake", help="write one batch into LAKE/raw/ instead")
    gen.set_defaults(func=cmd_generate)

    tr = sub.add_parser(
        "transform",
        help="process a file as if it had landed at raw/<name>",
        description="Copy FILE to LAKE/raw/<name> and run the transformer on it. Exits 0 "
        "when records were quarantined: that is the pipeline working.",
    )
    tr.add_argument("file", help="raw file: NDJSON, JSON array or object, optionally gzipped")
    tr.add_argument("--lake", default="lake", help="lake directory (default: ./lake)")
    tr.add_argument("--json", action="store_true", help="print the summary as JSON")
    tr.set_defaults(func=cmd_transform)

    q = sub.add_parser(
        "query",
        help="run SQL with DuckDB over processed/",
        description="Run SQL (or a .sql file) with DuckDB; `transactions` is a view over "
        "LAKE/processed/ with Hive partitions year/month/day.",
    )
    q.add_argument("sql", metavar="SQL_OR_FILE")
    q.add_argument("--lake", default="lake", help="lake directory (default: ./lake)")
    q.set_defaults(func=cmd_query)

    c = sub.add_parser(
        "contract",
        help="print the data contract as a Markdown table",
        description="Print the data contract, generated from the pandera model in "
        "schemas/: each field's JSON type, stored type, the checks that guard it (the "
        "same names quarantine entries report) and its description. The README's table "
        "is this output.",
    )
    c.set_defaults(func=cmd_contract)

    for register in _extensions():
        register(sub)
    return parser


def _extensions() -> list[Callable[[Any], None]]:
    """Subcommands defined beside the core ones (quarantine tools, report, maintain)."""
    registers = []
    for module_name in ("pipeline.quarantine_cli", "pipeline.maintain_cli"):
        try:
            module = __import__(module_name, fromlist=["register"])
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            continue
        registers.append(module.register)
    return registers


def main(argv: Sequence[str] | None = None) -> int:
    with settled_imports():
        args = build_parser().parse_args(argv)  # imports every command's modules
    return _run(args)


@contextmanager
def settled_imports() -> Iterator[None]:
    """Imports in the block run without cyclic GC passes; what they made is then frozen.

    pandas, pandera, pyarrow and schemas leave ~150,000 objects that live as long as the
    process. Each full collection walks all of them (~0.1 s here): about ten times while
    they are imported, and again at exit. Frozen, they are never walked again; the
    collector still runs for everything the command itself creates.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or EXIT_OK)
    except UsageError as e:
        print(f"error: {e.reason}", file=sys.stderr)
        return EXIT_USAGE
    except StorageError as e:
        print(f"error: {e.reason}", file=sys.stderr)
        return EXIT_ERROR
    except PipelineError as e:
        print(f"error: {e.reason}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
