"""The bench's hostile section: peak RSS of the transformer on files built to exhaust memory."""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from pipeline.bench import RESULTS_DIR, measure

TARGET_HOSTILE_RSS_MB = 512  # the Lambda default memory must hold whatever the input
MB = 1024 * 1024
_BLOCK = 4 * MB


@dataclass
class HostileRow:
    """One hostile input: its size, what the transformer made of it, and its peak RSS."""

    name: str
    input_bytes: int
    seconds: float
    max_rss_mb: float
    records_in: int
    processed: int
    quarantined: int
    checks: dict[str, int]
    holds: bool = False


def _empty_objects(out: IO[bytes]) -> None:
    out.write(b"{}\n" * (MB // 3))  # 1 MiB: 349,525 records, each failing every field


def _long_line(out: IO[bytes]) -> None:
    out.write(b'{"transaction_id":"')
    block = b"x" * _BLOCK
    for _ in range(300 * MB // _BLOCK):
        out.write(block)
    out.write(b'"}\n')


def _record(i: int) -> bytes:
    return (
        b'{"transaction_id":"t-%d","timestamp":"2026-01-15T12:00:00Z","customer_id":"C1",'
        b'"product_id":"P01001","product_name":"Wireless Earbuds","category":"Electronics",'
        b'"quantity":2,"price":79.99,"total_amount":159.98}' % i
    )


def _array(out: IO[bytes]) -> None:
    out.write(b"[\n")
    written, i = 2, 0
    while written < 250 * MB:
        block = b",\n".join(_record(n) for n in range(i, i + 10_000))
        out.write((b",\n" if i else b"") + block)
        written += len(block) + 2
        i += 10_000
    out.write(b"\n]\n")


def _object(out: IO[bytes]) -> None:
    out.write(b"{\n")
    written, i = 2, 0
    while written < 250 * MB:
        block = b",\n".join(b'  "key-%d": "%s"' % (n, b"v" * 200) for n in range(i, i + 10_000))
        out.write((b",\n" if i else b"") + block)
        written += len(block) + 2
        i += 10_000
    out.write(b"\n}\n")


def _gzip_bomb(out: IO[bytes]) -> None:
    # 128 gzip members of 16 MiB of NUL bytes each: ~2 MB that expands to 2 GiB.
    member = gzip.compress(b"\x00" * (16 * MB), compresslevel=9)
    for _ in range(128):
        out.write(member)


INPUTS: dict[str, tuple[str, Callable[[IO[bytes]], None]]] = {
    "1 MiB of {} lines": ("empty-objects.jsonl", _empty_objects),
    "a 300 MB line": ("long-line.jsonl", _long_line),
    "a 250 MB JSON array": ("array.json", _array),
    "a 250 MB JSON object": ("object.json", _object),
    "a 2 MB -> 2 GiB gzip bomb": ("bomb.jsonl.gz", _gzip_bomb),
}


def run_hostile(workdir: Path) -> list[HostileRow]:
    """Build each hostile input in `workdir`, transform it in a fresh process, measure it."""
    rows = []
    for name, (filename, write) in INPUTS.items():
        source = workdir / filename
        with source.open("wb") as out:
            write(out)
        lake = workdir / "hostile-lake"
        shutil.rmtree(lake, ignore_errors=True)
        argv = [sys.executable, "-m", "pipeline", "transform", str(source), "--lake", str(lake)]
        run = measure(name, [*argv, "--json"])
        summary = json.loads(run.output.splitlines()[-1])
        if summary["records_in"] != summary["processed"] + summary["quarantined"]:
            raise RuntimeError(f"{name}: records were lost: {summary}")
        rows.append(
            HostileRow(
                name=name,
                input_bytes=source.stat().st_size,
                seconds=round(run.seconds, 2),
                max_rss_mb=round(run.max_rss_mb),
                records_in=summary["records_in"],
                processed=summary["processed"],
                quarantined=summary["quarantined"],
                checks=summary.get("quarantined_by_check", {}),
                holds=run.max_rss_mb <= TARGET_HOSTILE_RSS_MB,
            )
        )
        print(f"  {name:<28} {run.seconds:7.2f} s {run.max_rss_mb:7.0f} MB", file=sys.stderr)
        source.unlink()
        shutil.rmtree(lake, ignore_errors=True)
    return rows


def print_hostile(rows: Sequence[HostileRow]) -> None:
    print(
        f"\nHostile input (peak RSS of `pipeline transform`; target <= {TARGET_HOSTILE_RSS_MB} MB):"
    )
    for r in rows:
        named = [f"{k} {v:,}" for k, v in sorted(r.checks.items())]
        checks = ", ".join(named[:2] + ([f"{len(named) - 2} more"] if len(named) > 2 else []))
        print(
            f"  {'ok  ' if r.holds else 'MISS'} {r.name:<28} {r.input_bytes / MB:8.1f} MiB "
            f"{r.seconds:7.2f} s {r.max_rss_mb:6.0f} MB  in {r.records_in:,}: "
            f"{r.processed:,} processed, {r.quarantined:,} quarantined ({checks})"
        )


def hostile_section(workdir: Path | None = None) -> list[dict[str, Any]]:
    """The section `make bench` runs: build, measure, print; the rows as dicts for JSON."""
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        rows = run_hostile(Path(scratch))
    print_hostile(rows)
    return [asdict(r) for r in rows]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.bench_hostile",
        description="Only the bench's hostile section: peak RSS of the transformer on inputs "
        "built to exhaust memory (needs ~600 MB of free disk while it runs).",
    )
    parser.add_argument("--workdir", default=None, help="where inputs go (default: system temp)")
    parser.add_argument(
        "--out-dir", default=str(RESULTS_DIR), help="where the JSON goes (default bench-results/)"
    )
    args = parser.parse_args(argv)
    rows = hostile_section(Path(args.workdir) if args.workdir else None)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bench-hostile-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\nFigures written to {path}")
    return 0 if all(r["holds"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
