"""The README's commands and the hint `pipeline run` prints, run as written in a fresh shell."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)
# A fresh login: no inherited PATH entries, no PYTHONPATH, no active venv.
CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}


def readme_commands() -> list[str]:
    """Every `pipeline …` line of the README's shell blocks, trailing comments removed."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] == "pipeline":
                commands.append(shlex.join(words))
    return commands


def fresh_shell(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", "-c", script],
        cwd=cwd,
        env=CLEAN_ENV,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def checked(commands: list[str]) -> str:
    """A script that stops at the first failing command and names it."""
    return "\n".join(
        f"{c} || {{ echo {shlex.quote('FAILED: ' + c)} >&2; exit 1; }}" for c in commands
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A working directory laid out like the repository: `.venv` here, lake under it."""
    if Path(sys.base_prefix) == VENV:
        pytest.skip("tests are not running inside the project's .venv")
    assert (VENV / "bin" / "pipeline").is_file(), (
        f"no `pipeline` command in {VENV}/bin: `make setup` installs it (pip install -e .)"
    )
    activate = (VENV / "bin" / "activate").read_text(encoding="utf-8")
    if f'VIRTUAL_ENV="{VENV}"' not in activate:
        pytest.skip(f"{VENV} was copied from another venv: its activate script points elsewhere")
    (tmp_path / ".venv").symlink_to(VENV)
    return tmp_path


def test_readme_commands_run_as_written_after_make_run(checkout: Path) -> None:
    commands = readme_commands()
    assert len(commands) >= 8, commands  # the quick start and the quarantine tools
    assert not [c for c in commands if c.startswith("python")]
    # What `make run` does (on a small lake), then the hint it prints, in a new shell.
    ran = fresh_shell(". .venv/bin/activate && pipeline run --batches 2 --batch-size 60", checkout)
    assert ran.returncode == 0, ran.stderr
    hint = ran.stdout.split("query the lake", 1)[1].splitlines()[1:]
    hint = [line.strip() for line in hint if line.strip()]
    assert hint[0].startswith(". ") and hint[0].endswith(".venv/bin/activate")
    assert hint[1].startswith("pipeline query --lake lake ")
    done = fresh_shell(checked(hint), checkout)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1].isdigit()  # the count of processed rows
    # Every README command, after the activation line the README gives.
    done = fresh_shell(checked([". .venv/bin/activate", *commands]), checkout)
    assert done.returncode == 0, done.stderr
    assert (checkout / "report.html").is_file() and (checkout / "price.csv").is_file()


def test_without_activation_the_command_is_not_found(checkout: Path) -> None:
    """The activation line is what makes `pipeline` resolve: the test above needs it."""
    done = fresh_shell("pipeline --help", checkout)
    assert done.returncode == 127
