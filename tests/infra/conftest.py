"""Fixtures for the infrastructure tests: the real program, run under Pulumi mocks per stack."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("program_runner.py")
STACKS = ("dev", "prod")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

Record = dict[str, Any]


def run_program(
    stack: str,
    *,
    sets: tuple[str, ...] = (),
    unsets: tuple[str, ...] = (),
    canary: bool = False,
) -> Record:
    """Run `__main__.py` for one stack in a fresh interpreter; return its JSON record."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "record.json"
        command = [sys.executable, str(RUNNER), "--stack", stack, "--out", str(out)]
        command += [arg for item in sets for arg in ("--set", item)]
        command += [arg for item in unsets for arg in ("--unset", item)]
        if canary:
            command.append("--canary")
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if not out.exists():
            raise AssertionError(
                f"program runner crashed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        record = json.loads(out.read_text())
    record["exitCode"] = done.returncode
    return record


@pytest.fixture(scope="session")
def stack_records() -> dict[str, Record]:
    """Both stacks, run in parallel: each is its own process, so no shared runtime state."""
    with ThreadPoolExecutor(max_workers=len(STACKS)) as pool:
        records = dict(zip(STACKS, pool.map(run_program, STACKS), strict=True))
    for stack, record in records.items():
        assert record["error"] is None, f"{stack}: program failed: {record['error']}"
    return records


@pytest.fixture(scope="session")
def program() -> Callable[..., Record]:
    """Run the program with config overrides, e.g. to prove bad config is rejected."""
    return run_program


# One View per stack (`view`, parametrized) or a named one (`dev`, `prod`), for every test file.
@pytest.fixture(scope="module", params=STACKS)
def view(request: pytest.FixtureRequest, stack_records: dict[str, Record]) -> Any:
    from infra_view import View

    return View(stack_records[request.param])


@pytest.fixture(scope="module")
def dev(stack_records: dict[str, Record]) -> Any:
    from infra_view import View

    return View(stack_records["dev"])


@pytest.fixture(scope="module")
def prod(stack_records: dict[str, Record]) -> Any:
    from infra_view import View

    return View(stack_records["prod"])
