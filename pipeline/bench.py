"""`python -m pipeline.bench`: the transformer against bare pyarrow: time, memory, cold start."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from handlers.core.storage import RAW_PREFIX
from pipeline.bench_results import Report, Row, Verdict, lambda_sizing, machine, print_report

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench-results"
REFERENCE_TIME = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)  # midday: one day partition
BLOCK_RECORDS = 100_000
SEED = 20260115

# Targets of issue #5 (ratios are against bare pyarrow on the same file, same run).
TARGET_CLEAN_RATIO = 1.5
TARGET_FAULTY_RATIO = 2.5
TARGET_RSS_MB = 450
TARGET_SCALING = 1.10
TARGET_COLD_START = 1.2

# The practical speed limit: Arrow reads, derives the same columns, writes by day. No
# validation, no quarantine, no manifest. Imports nothing from this project.
BARE_PYARROW = r"""
import sys
from datetime import datetime, timezone
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq

source, out = sys.argv[1], sys.argv[2]
table = pj.read_json(source)
instants = pc.cast(table.column("timestamp"), pa.timestamp("us", tz="UTC"))
n = table.num_rows
table = table.set_column(table.schema.get_field_index("timestamp"), "timestamp", instants)
now = pa.scalar(datetime.now(timezone.utc), pa.timestamp("us", tz="UTC"))
for name, column in {
    "hour": pc.hour(instants).cast(pa.int8()),
    "day_of_week": pc.day_of_week(instants).cast(pa.int8()),
    "source_key": pa.repeat(pa.scalar(source), n),
    "ingested_at": pa.repeat(now, n),
    "year": pc.year(instants).cast(pa.int16()),
    "month": pc.month(instants).cast(pa.int8()),
    "day": pc.day(instants).cast(pa.int8()),
}.items():
    table = table.append_column(name, column)
pq.write_to_dataset(table, out, partition_cols=["year", "month", "day"])
"""

# The original design: json.loads per line, a pandas DataFrame, to_parquet by day;
# optionally a pandera schema of the same rules first (argv[3] == "1").
ORIGINAL_PANDAS = r"""
import json
import sys
import pandas as pd

source, out, validate = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
with open(source, "rb") as f:
    frame = pd.DataFrame([json.loads(line) for line in f if line.strip()])
if validate:
    import pandera.pandas as pa
    text = pa.Column(checks=[pa.Check.str_length(1, 256)])
    schema = pa.DataFrameSchema({
        "transaction_id": pa.Column(checks=[pa.Check.str_length(1, 256)], unique=True),
        "timestamp": pa.Column(checks=[pa.Check.str_matches(r"^\d{4}-\d{2}-\d{2}")]),
        "customer_id": text, "product_id": text, "product_name": text,
        "category": pa.Column(checks=[pa.Check.isin(CATEGORIES)]),
        "quantity": pa.Column(checks=[pa.Check.in_range(1, 10000)]),
        "price": pa.Column(checks=[pa.Check.gt(0), pa.Check.le(1000000)]),
        "total_amount": pa.Column(checks=[pa.Check.gt(0)]),
    })
    try:
        frame = schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as e:
        bad = e.failure_cases["index"].dropna().unique()
        frame = frame.drop(index=bad)
instants = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
frame["timestamp"] = instants
frame["hour"] = instants.dt.hour.astype("int8")
frame["day_of_week"] = instants.dt.dayofweek.astype("int8")
frame["source_key"] = source
frame["ingested_at"] = pd.Timestamp.now(tz="UTC")
frame["year"] = instants.dt.year.astype("int16")
frame["month"] = instants.dt.month.astype("int8")
frame["day"] = instants.dt.day.astype("int8")
frame.to_parquet(out, partition_cols=["year", "month", "day"])
"""

SMALL_CLEAN = "transformer (clean, 16 MB slices)"
SMALL_FAULTY = "transformer ({:.0%} faulty, 16 MB slices)"

COLD_START = {
    "interpreter": "pass",
    "pandas + pyarrow.parquet": "import pandas, pyarrow.parquet",
    "handlers.transformer": "import handlers.transformer",
    "handlers.core.transform (first event)": "import handlers.core.transform",
}


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- inputs


def write_ndjson(path: Path, records: int, *, fault_rate: float, seed: int = SEED) -> int:
    """`records` lines from the generator, fast: one block generated, copied with new ids.

    The block is `handlers.core.generate` output; each copy rewrites the first 8 hex
    digits of every transaction id with the copy's number, so ids stay unique across
    copies while each copy keeps the block's faults (including its deliberate duplicate
    ids, which stay duplicates within their copy). Returns the bytes written.
    """
    import numpy as np

    from handlers.core.generate import generate_batch, to_ndjson

    block_records = max(1, min(records, BLOCK_RECORDS))
    lines = generate_batch(
        block_records, seed=seed, reference_time=REFERENCE_TIME, fault_rate=fault_rate
    )
    block = to_ndjson(lines)
    ids = [m.start(1) for m in re.finditer(rb'"transaction_id":"([0-9a-f]{8})-', block)]
    if fault_rate == 0:
        suffixes = {block[i + 8 : i + 36] for i in ids}
        if len(suffixes) != len(ids) or len(ids) != block_records:
            raise RuntimeError("generator block has repeated id suffixes: pick another seed")
    ends = np.flatnonzero(np.frombuffer(block, np.uint8) == 10) + 1  # end of each line
    digits = np.asarray(ids, dtype=np.int64)[:, None] + np.arange(8)
    template = np.frombuffer(block, np.uint8).copy()
    written = 0
    with path.open("wb") as out:
        for copy in range((records + block_records - 1) // block_records):
            template[digits] = np.frombuffer(f"{copy:08x}".encode(), np.uint8)
            take = min(block_records, records - copy * block_records)
            end = int(ends[take - 1])
            out.write(memoryview(template)[:end])
            written += end
    return written


def _warm(path: Path) -> None:
    # Read once so every measured run finds the file in the page cache.
    with path.open("rb") as f:
        while f.read(16 << 20):
            pass


# --------------------------------------------------------------------------- runs


@dataclass
class Run:
    """One measured child process."""

    name: str
    seconds: float
    cpu_seconds: float
    max_rss_mb: float
    output: str = ""


# Runs the measured command and reports its wall time and rusage. Linux folds a parent's
# RSS high-water mark into a forked child's ru_maxrss, so the bench (with numpy loaded)
# would inflate small children: this launcher is a bare interpreter, a few MB.
LAUNCHER = r"""
import json, os, sys, time
report, argv = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
pid = os.posix_spawn(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as f:
    json.dump({"returncode": os.waitstatus_to_exitcode(status),
               "seconds": time.perf_counter() - started,
               "cpu_seconds": usage.ru_utime + usage.ru_stime,
               "max_rss_kb": usage.ru_maxrss}, f)
"""


def measure(
    name: str, argv: list[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> Run:
    """Run `argv` in a fresh process: its wall time, CPU time and peak RSS."""
    env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(suffix=".json") as figures,
    ):
        launcher = [sys.executable, "-c", LAUNCHER, figures.name, *argv]
        subprocess.run(launcher, cwd=cwd, env=env, stdout=out, stderr=err, check=False)  # noqa: S603
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
        try:
            result = json.loads(Path(figures.name).read_text())
        except ValueError as e:
            raise RuntimeError(f"{name}: the launcher failed: {stderr[-2000:]}") from e
    if result["returncode"] != 0:
        raise RuntimeError(f"{name} failed ({result['returncode']}): {stderr[-2000:]}")
    return Run(
        name=name,
        seconds=result["seconds"],
        cpu_seconds=result["cpu_seconds"],
        max_rss_mb=result["max_rss_kb"] / 1024,  # KiB on Linux
        output=stdout.strip()[-2000:],
    )


def _check_committed(name: str, lake: Path, processed: int) -> None:
    """The measured process must have committed its rows: the time includes the commit."""
    from pipeline.bench_iceberg import committed_rows

    committed = committed_rows(lake)
    if committed is not None and committed != processed:
        raise RuntimeError(f"{name}: {processed} rows processed but {committed} committed")


class Bench:
    """Runs every measurement in its own process and keeps the raw runs."""

    def __init__(self, workdir: Path, records: int) -> None:
        self.workdir = workdir
        self.records = records
        self.runs: dict[str, list[Run]] = {}

    def _scratch(self, name: str) -> Path:
        path = self.workdir / f"out-{name}"
        shutil.rmtree(path, ignore_errors=True)
        return path

    def _keep(self, run: Run) -> Run:
        self.runs.setdefault(run.name, []).append(run)
        _progress(f"  {run.name:<34} {run.seconds:7.2f} s {run.max_rss_mb:7.0f} MB")
        return run

    def bare(self, source: Path, name: str = "bare pyarrow") -> Run:
        out = self._scratch("bare")
        run = measure(name, [sys.executable, "-c", BARE_PYARROW, str(source), str(out)])
        shutil.rmtree(out, ignore_errors=True)
        return self._keep(run)

    def original(self, source: Path, *, validate: bool) -> Run:
        from schemas.catalog import CATEGORIES

        out = self._scratch("original")
        script = ORIGINAL_PANDAS.replace("CATEGORIES", repr(sorted(CATEGORIES)))
        name = "original pandas" + (" + pandera" if validate else "")
        run = measure(
            name, [sys.executable, "-c", script, str(source), str(out), str(int(validate))]
        )
        shutil.rmtree(out, ignore_errors=True)
        return self._keep(run)

    def transform(self, source: Path, name: str, env: dict[str, str] | None = None) -> Run:
        lake = self._scratch("lake")
        # The file is already in the lake, as an S3 object is when its event arrives: the
        # timed process transforms it. (Given a file from elsewhere, `pipeline transform`
        # first copies it in, 256 MB here, which is the upload, not the transformer.)
        landed = lake / RAW_PREFIX / source.name
        landed.parent.mkdir(parents=True)
        source.replace(landed)
        try:
            argv = [sys.executable, "-m", "pipeline", "transform", str(landed), "--lake", str(lake)]
            run = measure(name, [*argv, "--json"], env=env)
        finally:
            landed.replace(source)
        summary = json.loads(run.output.splitlines()[-1])
        if summary["records_in"] != summary["processed"] + summary["quarantined"]:
            raise RuntimeError(f"{name}: records were lost: {summary}")
        _check_committed(name, lake, summary["processed"])
        shutil.rmtree(lake, ignore_errors=True)
        run.output = json.dumps(
            {k: summary[k] for k in ("records_in", "processed", "quarantined", "outputs")}
        )
        return self._keep(run)

    def cold_start(self, name: str, code: str) -> Run:
        return self._keep(measure(name, [sys.executable, "-c", code]))

    def median(self, name: str, attr: str = "seconds") -> float:
        return statistics.median(getattr(r, attr) for r in self.runs[name])


# --------------------------------------------------------------------------- report


def run(args: argparse.Namespace) -> Report:
    """Every measurement, alternating where it compares, in a scratch directory."""
    report = Report(
        started_at=datetime.now(UTC).isoformat(),
        machine=machine(),
        parameters={
            "records": args.records,
            "repeat": args.repeat,
            "fault_rate": args.fault_rate,
            "scaling_factor": args.scaling_factor,
            "original": not args.skip_original,
        },
    )
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="pipeline-bench-", dir=args.workdir))
    try:
        clean, faulty, clean_bytes = _inputs(workdir, args)
        bench = Bench(workdir, args.records)
        _measure(bench, args, clean, faulty)
        scaled_records = _measure_scaling(bench, args, workdir)
        _tabulate(report, bench, args, scaled_records)
        _verdicts(report, bench, args, scaled_records)
        rows = {r.name: r for r in report.rows}
        report.lambda_sizing = lambda_sizing(
            clean=rows["transformer (clean)"],
            faulty=rows[f"transformer ({args.fault_rate:.0%} faulty)"],
            small_clean=rows[SMALL_CLEAN],
            small_faulty=rows[SMALL_FAULTY.format(args.fault_rate)],
            bytes_per_record=clean_bytes / args.records,
        )
        if not args.skip_small_files:
            _small_files(report, workdir)
        report.machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return report


def _inputs(workdir: Path, args: argparse.Namespace) -> tuple[Path, Path, int]:
    """The clean and the faulty file, in the page cache; and the clean file's size."""
    _progress(f"inputs in {workdir}")
    clean = workdir / "clean.ndjson"
    faulty = workdir / "faulty.ndjson"
    t = time.perf_counter()
    clean_bytes = write_ndjson(clean, args.records, fault_rate=0.0)
    write_ndjson(faulty, args.records, fault_rate=args.fault_rate)
    _progress(
        f"  {args.records:,} records ({clean_bytes / 1e6:.0f} MB) clean and "
        f"{args.fault_rate:.0%} faulty in {time.perf_counter() - t:.1f} s"
    )
    for path in (clean, faulty):
        _warm(path)
    return clean, faulty, clean_bytes


def _measure(bench: Bench, args: argparse.Namespace, clean: Path, faulty: Path) -> None:
    _progress("cold start (imports in a fresh interpreter)")
    for _ in range(max(args.repeat, 5)):
        for name, code in COLD_START.items():
            bench.cold_start(name, code)
    _progress("bare pyarrow vs transformer, alternating")
    for _ in range(args.repeat):
        bench.bare(clean)
        bench.transform(clean, "transformer (clean)")
        bench.transform(faulty, f"transformer ({args.fault_rate:.0%} faulty)")
    _progress("as in a Lambda under 1 GB (16 MB slices), once each")
    small = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512"}
    bench.transform(clean, SMALL_CLEAN, env=small)
    bench.transform(faulty, SMALL_FAULTY.format(args.fault_rate), env=small)
    if not args.skip_original:
        _progress("original design (pandas), once each")
        bench.original(clean, validate=False)
        bench.original(clean, validate=True)


def _measure_scaling(bench: Bench, args: argparse.Namespace, workdir: Path) -> int:
    """The transformer on a file `scaling_factor` times larger; its record count (0: none)."""
    scaled_records = args.records * args.scaling_factor if args.scaling_factor else 0
    if scaled_records:
        _progress(f"memory scaling: {scaled_records:,} records")
        scaled = workdir / "scaled.ndjson"
        write_ndjson(scaled, scaled_records, fault_rate=0.0)
        _warm(scaled)
        bench.transform(scaled, f"transformer (clean, {args.scaling_factor}x)")
        scaled.unlink()
    return scaled_records


def _tabulate(report: Report, bench: Bench, args: argparse.Namespace, scaled: int) -> None:
    """Medians into the report's rows, ratios against bare pyarrow; the raw runs too."""
    bare = bench.median("bare pyarrow")
    bare_rss = bench.median("bare pyarrow", "max_rss_mb")
    for name, runs in bench.runs.items():
        if name in COLD_START:
            continue
        records = scaled if "x)" in name else args.records
        seconds = bench.median(name)
        rss = bench.median(name, "max_rss_mb")
        report.rows.append(
            Row(
                name=name,
                records=records,
                seconds=round(seconds, 3),
                cpu_seconds=round(bench.median(name, "cpu_seconds"), 3),
                max_rss_mb=round(rss, 1),
                runs=len(runs),
                time_ratio=None if records != args.records else round(seconds / bare, 3),
                rss_ratio=round(rss / bare_rss, 3),
            )
        )
    for name in COLD_START:
        report.cold_start[name] = {
            "seconds": round(bench.median(name), 4),
            "max_rss_mb": round(bench.median(name, "max_rss_mb"), 1),
        }
    report.runs = {name: [asdict(r) for r in runs] for name, runs in bench.runs.items()}


def _verdicts(report: Report, bench: Bench, args: argparse.Namespace, scaled: int) -> None:
    bare = bench.median("bare pyarrow")
    clean = bench.median("transformer (clean)")
    faulty = bench.median(f"transformer ({args.fault_rate:.0%} faulty)")
    rss = bench.median("transformer (clean)", "max_rss_mb")
    verdicts = [
        Verdict("1. clean wall time / bare pyarrow", TARGET_CLEAN_RATIO, clean / bare, False),
        Verdict("2. faulty wall time / bare pyarrow", TARGET_FAULTY_RATIO, faulty / bare, False),
        Verdict("3. peak RSS MB (clean)", TARGET_RSS_MB, rss, False),
    ]
    if scaled:
        big = bench.median(f"transformer (clean, {args.scaling_factor}x)", "max_rss_mb")
        verdicts.append(
            Verdict(f"3. peak RSS {args.scaling_factor}x / 1x", TARGET_SCALING, big / rss, False)
        )
    imports = report.cold_start
    verdicts.append(
        Verdict(
            "4. import handlers.transformer / pandas+pyarrow.parquet",
            TARGET_COLD_START,
            imports["handlers.transformer"]["seconds"]
            / imports["pandas + pyarrow.parquet"]["seconds"],
            False,
        )
    )
    for v in verdicts:
        v.measured = round(v.measured, 3)
        v.holds = v.measured <= v.limit
    report.verdicts = verdicts


def _small_files(report: Report, workdir: Path) -> None:
    """Iceberg: 10 days of 5-minute commits, then `maintain` (pipeline/bench_iceberg.py)."""
    from pipeline.bench_iceberg import TARGET_COMPACTED_RATIO, small_files

    _progress("small files: 10 days x 288 five-minute files of 1,000 rows, then maintain")
    figures = small_files(workdir, say=_progress)
    report.small_files = figures.to_dict()
    measured = round(figures.compacted_ratio, 3)
    report.verdicts.append(
        Verdict(
            "5. group-by after maintain / one file per day",
            TARGET_COMPACTED_RATIO,
            measured,
            measured <= TARGET_COMPACTED_RATIO and figures.same_result,
        )
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.bench",
        description="Benchmark the transformer (`python -m pipeline transform`, a whole "
        "process) against a bare pyarrow script and the original pandas design, on files "
        "built from the generator. Each measurement runs in a fresh process; peak RSS is "
        "that process's. Prints a table and writes the figures as JSON.",
    )
    parser.add_argument(
        "--records", type=_positive, default=1_000_000, help="records per file (default 1M)"
    )
    parser.add_argument(
        "--repeat", type=_positive, default=3, help="alternating runs, median kept (default 3)"
    )
    parser.add_argument(
        "--fault-rate", type=float, default=0.05, help="share of faulty records (default 0.05)"
    )
    parser.add_argument(
        "--scaling-factor",
        type=int,
        default=4,
        help="also measure the transformer's RSS on a file this many times larger "
        "(default 4; 0 skips it)",
    )
    parser.add_argument(
        "--no-memory-scaling",
        dest="scaling_factor",
        action="store_const",
        const=0,
        help="skip the larger file",
    )
    parser.add_argument(
        "--skip-original", action="store_true", help="skip the slow original-design runs"
    )
    parser.add_argument(
        "--skip-hostile", action="store_true", help="skip the hostile-input section"
    )
    parser.add_argument(
        "--skip-small-files",
        action="store_true",
        help="skip the Iceberg small-file item (2,880 commits, then maintain)",
    )
    parser.add_argument(
        "--workdir", default=None, help="where inputs go (created if missing; default: system temp)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated inputs")
    parser.add_argument(
        "--out-dir", default=str(RESULTS_DIR), help="where the JSON goes (default bench-results/)"
    )
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from e
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    report = run(args)
    print_report(report)
    hostile = None
    if not args.skip_hostile:
        from pipeline.bench_hostile import hostile_section

        hostile = hostile_section(Path(args.workdir) if args.workdir else None)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"bench-{stamp}.json"
    figures = {**asdict(report), **({"hostile": hostile} if hostile is not None else {})}
    path.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(f"\nFigures written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
