"""What every quarantine command shares: the target, the selection, problems and output."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from handlers.core.errors import ConfigError, PipelineError, UsageError
from handlers.core.storage import LocalStorage, Storage, open_storage
from pipeline import quarantine as q

EXIT_OK = 0
EXIT_ERROR = 1
REPO_ROOT = Path(__file__).resolve().parents[2]

TARGET_HELP = (
    "Target: a local lake (--lake DIR, default ./lake), a bucket (--bucket NAME; honours "
    "AWS_ENDPOINT_URL and the usual AWS credentials) or a deployed Pulumi stack (--stack "
    "NAME reads `pulumi stack output bucket`)."
)
EXIT_HELP = (
    "Exit codes: 0 done; 1 operational error, or some quarantine/processed files could not "
    "be read (they are listed on stderr; everything readable was still handled); 2 bad "
    "arguments."
)
DAY_HELP = "day YYYY-MM-DD (inclusive), 'today', or Nd for N days ago"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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


def selection_of(args: argparse.Namespace) -> q.Selection:
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


def report_problems(problems: Sequence[q.Problem]) -> int:
    """Print problems to stderr; EXIT_ERROR when some data could not be read."""
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity != "error"]
    for p in warnings[:20]:
        say(str(p))
    if len(warnings) > 20:
        say(f"warning: {len(warnings) - 20} more ignored objects")
    for p in errors[:50]:
        say(str(p))
    if len(errors) > 50:
        say(f"error: {len(errors) - 50} more unreadable objects or lines")
    if errors:
        say(f"error: {len(errors)} problem(s) reading the lake; results cover what was readable")
        return EXIT_ERROR
    return EXIT_OK


# --------------------------------------------------------------------------- output helpers


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    from pipeline.query import format_table

    return format_table(headers, rows)


def pct(rate: float) -> str:
    return f"{rate:.2%}"


def safe(text: str) -> str:
    """Untrusted text for a terminal: control characters (ANSI escapes…) made visible."""
    return "".join(
        c if c in "\n" or (c.isprintable() or c == " ") else repr(c)[1:-1] for c in str(text)
    )


def dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)
