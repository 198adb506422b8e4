"""The bench's results: the table, the verdicts, what Lambda sizes they allow, the printout."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# AWS Lambda: CPU is proportional to memory, one full vCPU at 1,769 MB; 15 minute cap.
LAMBDA_FULL_VCPU_MB = 1769
LAMBDA_MAX_SECONDS = 900
LAMBDA_SAFE_SECONDS = 780  # leave room for S3 latency, retries and a cold start
LAMBDA_MEMORY_HEADROOM = 1.25  # peak RSS x this must fit the memory setting
SEEN_ID_BYTES = 8  # the file-wide set of transaction-id hashes, per record


@dataclass
class Row:
    """One line of the results table (medians)."""

    name: str
    records: int
    seconds: float
    cpu_seconds: float
    max_rss_mb: float
    runs: int
    time_ratio: float | None = None
    rss_ratio: float | None = None
    records_per_second: float = 0.0

    def __post_init__(self) -> None:
        self.records_per_second = round(self.records / self.seconds) if self.seconds else 0.0


@dataclass
class Verdict:
    """A target of the issue, the measured figure and whether it holds."""

    target: str
    limit: float
    measured: float
    holds: bool


@dataclass
class Report:
    """Everything one bench run found, as written to JSON."""

    started_at: str
    machine: dict[str, Any]
    parameters: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    cold_start: dict[str, dict[str, float]] = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)
    lambda_sizing: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    small_files: dict[str, Any] = field(default_factory=dict)


def machine() -> dict[str, Any]:
    """Where the figures come from."""
    import numpy
    import pandas
    import pandera
    import pyarrow

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
    memory_mb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_mb = int(line.split()[1]) // 1024
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "memory_mb": memory_mb,
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "pyarrow": pyarrow.__version__,
        "pandas": pandas.__version__,
        "pandera": pandera.__version__,
        "numpy": numpy.__version__,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def lambda_sizing(
    *, clean: Row, faulty: Row, small_clean: Row, small_faulty: Row, bytes_per_record: float
) -> dict[str, Any]:
    """What a Lambda of a given size can transform, from CPU time and (bounded) RSS.

    Lambda gives CPU in proportion to memory (one vCPU at 1,769 MB), which sets how many
    records fit in the time limit. Memory: the chunks' peak does not grow with the file;
    only the file-wide set of id hashes does, by 8 bytes a record, which sets how many
    records fit in the memory. Under 1 GB the transformer uses 16 MB slices, so those
    runs give the peak there.
    """
    settings = []
    for memory in (512, 768, 1024, 1769, 3008):
        vcpu = min(memory / LAMBDA_FULL_VCPU_MB, 2.0)
        small = memory < 1024
        entry: dict[str, Any] = {"memory_mb": memory, "vcpu": round(vcpu, 2)}
        for label, row in (
            ("clean", small_clean if small else clean),
            ("faulty", small_faulty if small else faulty),
        ):
            per_cpu_second = row.records / row.cpu_seconds
            # Never more parallelism than the run itself reached on this machine.
            rate = per_cpu_second * min(vcpu, row.cpu_seconds / row.seconds)
            by_time = int(rate * LAMBDA_SAFE_SECONDS)
            spare_mb = memory / LAMBDA_MEMORY_HEADROOM - row.max_rss_mb
            by_memory = max(0, row.records + int(spare_mb * 2**20 / SEEN_ID_BYTES))
            records = min(by_time, by_memory)
            entry[label] = {
                "peak_rss_mb": round(row.max_rss_mb),
                "fits": spare_mb >= 0,
                "records_per_second": int(rate),
                "max_records_by_time": by_time,
                "max_records_by_memory": by_memory,
                "max_records": records,
                "limited_by": "time" if by_time <= by_memory else "memory",
                "max_ndjson_gb": round(records * bytes_per_record / 1e9, 2),
            }
        settings.append(entry)
    return {
        "assumptions": (
            f"CPU share = memory / {LAMBDA_FULL_VCPU_MB} MB; rate = records per CPU-second "
            f"measured here x that share; {LAMBDA_SAFE_SECONDS} s of the "
            f"{LAMBDA_MAX_SECONDS} s limit; peak RSS (+{SEEN_ID_BYTES} bytes a record "
            f"beyond the measured file) x {LAMBDA_MEMORY_HEADROOM} must fit"
        ),
        "bytes_per_record": round(bytes_per_record, 1),
        "settings": settings,
    }


def format_table(rows: list[Row]) -> str:
    header = (
        f"{'measurement':<34} {'records':>9} {'wall s':>8} {'rec/s':>10} "
        f"{'peak MB':>8} {'x bare':>7} {'RSS x':>6} {'runs':>4}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        time_ratio = f"{r.time_ratio:.2f}" if r.time_ratio is not None else "-"
        rss_ratio = f"{r.rss_ratio:.2f}" if r.rss_ratio is not None else "-"
        lines.append(
            f"{r.name:<34} {r.records:>9} {r.seconds:>8.2f} {r.records_per_second:>10,.0f} "
            f"{r.max_rss_mb:>8.0f} {time_ratio:>7} {rss_ratio:>6} {r.runs:>4}"
        )
    return "\n".join(lines)


def print_report(report: Report) -> None:
    m = report.machine
    print(
        f"\nMachine: {m['nproc']} CPU ({m['cpu_model']}), {m['memory_mb']:,} MB, "
        f"Python {m['python']}, pyarrow {m['pyarrow']}, pandas {m['pandas']}, "
        f"pandera {m['pandera']}; load {m['load_average_at_start']} -> "
        f"{m.get('load_average_at_end')}\n"
    )
    print(format_table(report.rows))
    print("\nCold start (fresh interpreter, median wall time incl. interpreter start):")
    base = report.cold_start["pandas + pyarrow.parquet"]["seconds"]
    for name, figures in report.cold_start.items():
        print(f"  {name:<40} {figures['seconds']:6.3f} s  ({figures['seconds'] / base:.2f}x)")
    print("\nTargets:")
    for v in report.verdicts:
        print(f"  {'ok  ' if v.holds else 'MISS'} {v.target:<56} {v.measured:>8.3f} <= {v.limit}")
    if report.small_files:
        from pipeline.bench_iceberg import format_small_files

        print("\n" + format_small_files(report.small_files))
    sizing = report.lambda_sizing
    if sizing:
        print("\nLambda sizing (largest file one invocation handles, and what limits it):")
        for s in sizing["settings"]:
            parts = []
            for label in ("clean", "faulty"):
                f = s[label]
                fits = "" if f["fits"] else " TOO SMALL"
                parts.append(
                    f"{label} {f['max_records'] / 1e6:5.1f}M rec ~{f['max_ndjson_gb']:4.1f} GB "
                    f"({f['limited_by']}; peak {f['peak_rss_mb']} MB at 1x{fits})"
                )
            print(f"  {s['memory_mb']:>5} MB ({s['vcpu']:.2f} vCPU): " + "; ".join(parts))
        print(f"  ({sizing['assumptions']})")
