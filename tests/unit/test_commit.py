"""The commit protocol's pure parts: landing order tokens, the bounded conflict retry."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from pyiceberg.exceptions import CommitFailedException

import handlers.core.commit as commit
from handlers.core.errors import StorageError
from handlers.core.storage import LocalStorage, ObjectInfo
from tests.helpers import GOOD_RECORD, encode

INFO = ObjectInfo("raw/a.jsonl", 10, "v1", datetime(2026, 1, 5, tzinfo=UTC))


def test_sequencers_compare_after_padding_and_only_with_each_other() -> None:
    short, long = commit.order_token("FF", INFO), commit.order_token("0100", INFO)
    assert commit.newer(long, short) and not commit.newer(short, long)
    assert commit.newer(commit.order_token("0062B0D6A0E5B8F1A2", INFO), short)
    mtime = commit.order_token("", INFO)
    assert mtime.startswith("mtime:")
    # A last-modified time never decides: it can be set back by hand.
    assert not commit.newer(mtime, short) and not commit.newer(short, mtime)
    later = ObjectInfo("raw/a.jsonl", 10, "v2", datetime(2027, 1, 1, tzinfo=UTC))
    assert not commit.newer(commit.order_token("", later), mtime)


def test_lost_races_are_retried_with_backoff_then_fail_transiently(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "lake")
    storage.put_bytes("raw/a.jsonl", encode(GOOD_RECORD) + b"\n")
    info = storage.stat("raw/a.jsonl")
    waits: list[float] = []

    class AlwaysLoses:
        def __init__(self, table: Any) -> None:
            self.table = table

        def transaction(self) -> Any:
            txn = self.table.transaction()
            txn.commit_transaction = mock.Mock(side_effect=CommitFailedException("lost"))
            return txn

    with (
        mock.patch.object(commit, "_no_auto_retry", lambda t: AlwaysLoses(t)),
        pytest.raises(StorageError) as failure,
    ):
        commit.commit_version(
            storage, info, "", [], lambda _old: {}, attempts=4, sleep=waits.append
        )
    assert failure.value.transient and "4 commit races" in failure.value.reason
    assert len(waits) == 4
    # Full jitter under an exponential cap.
    caps = [min(commit.BACKOFF_CAP_SECONDS, commit.BACKOFF_BASE_SECONDS * 2**n) for n in range(4)]
    assert all(0 <= w <= cap for w, cap in zip(waits, caps, strict=True))


def test_a_lost_race_is_decided_again_on_the_fresh_table(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "lake")
    storage.put_bytes("raw/a.jsonl", encode(GOOD_RECORD) + b"\n")
    info = storage.stat("raw/a.jsonl")
    first = commit.commit_version(storage, info, "", [], lambda _old: {})
    assert first.action == commit.COMMITTED
    # The same version again: the table holds it, so nothing is committed twice.
    again = commit.commit_version(storage, info, "", [], lambda _old: {})
    assert again.action == commit.DONE
    # Version 2 was read, then version 3 landed: version 2 must not commit.
    storage.put_bytes("raw/a.jsonl", encode(GOOD_RECORD) + b"\n\n")
    second = storage.stat("raw/a.jsonl")
    storage.put_bytes("raw/a.jsonl", encode(GOOD_RECORD) + b"\n\n\n")
    stale = commit.commit_version(storage, second, "", [], lambda _old: {})
    assert stale.action == commit.SUPERSEDED
    # An S3 sequencer older than the one the table holds loses too, whatever the store says.
    third = storage.stat("raw/a.jsonl")
    assert commit.commit_version(
        storage, third, commit.order_token("FF", third), [], lambda _old: {}
    )
    fourth_bytes = encode(GOOD_RECORD) + b"\n" * 4
    storage.put_bytes("raw/a.jsonl", fourth_bytes)
    fourth = storage.stat("raw/a.jsonl")
    late = commit.commit_version(
        storage, fourth, commit.order_token("0A", fourth), [], lambda _old: {}
    )
    assert late.action == commit.SUPERSEDED
