"""The test suite cleans up after itself."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import remove_scratch_dirs, scratch_dir


def test_scratch_dirs_are_removed() -> None:
    made = [Path(scratch_dir("lake-")) for _ in range(3)]
    (made[0] / "raw").mkdir()
    (made[0] / "raw" / "x.jsonl").write_bytes(b"{}\n")
    assert all(p.is_dir() for p in made)
    remove_scratch_dirs()
    assert not any(p.exists() for p in made)
