"""`replay`: re-validate selected entries against the current contract; move those that pass."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime

from handlers.core.errors import PipelineError
from handlers.core.storage import Storage
from pipeline.quarantine.model import EVERY_ENTRY, Problem, QuarantineRef, Selection, iso
from pipeline.quarantine.results import FileOutcome, Progress, ReferenceTime, ReplayResult
from pipeline.quarantine.source import SourceReplay
from pipeline.quarantine.state import load_state
from pipeline.quarantine.store import Copies, list_quarantine, read_quarantine


def replay(
    storage: Storage,
    selection: Selection = EVERY_ENTRY,
    *,
    reference: ReferenceTime = "landed",
    dry_run: bool = False,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> ReplayResult:
    """Re-validate selected entries against the current contract; move those that pass.

    Per quarantine file: the passing records' data files are written and committed to
    the table in one commit (only while the entries' version is the one the table holds),
    then the quarantine file is rewritten without the moved entries (or deleted when
    empty). A crash in between leaves entries in both places; the rows carry their entry
    ids (`replayed_entry_id`), so the tools count them once and the next replay removes
    them from quarantine.
    """
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    label = reference if isinstance(reference, str) else iso(reference)
    result = ReplayResult(dry_run=dry_run, reference=label)
    state = load_state(storage, result.problems)
    moved_ids = state.replayed
    refs = list_quarantine(storage, selection, result.problems, state)
    result.files = len(refs)
    groups = _by_source(refs, result.problems)
    done = 0
    copies = Copies()
    for keyid in sorted(groups):
        source = SourceReplay(storage, keyid, selection, reference, now, dry_run, result)
        for qfile in read_quarantine(storage, groups[keyid], result.problems):
            outcome = FileOutcome(qfile.key)
            try:
                source.replay_file(qfile, moved_ids, copies, outcome)
                if not dry_run:
                    # Rows now: a copy of one in a later file is removed like a leftover.
                    moved_ids.update(dict.fromkeys(outcome.moved, source.source_key))
            except PipelineError as e:
                # The file is consistent (write first, remove second); later files of
                # this source are left alone since the duplicate check saw claims that
                # may not have been written.
                result.problems.append(Problem(qfile.key, e.reason))
                source.broken = e.reason
            result.outcomes.append(outcome)
            done += 1
            if progress:
                progress(done, len(refs), outcome)
    result.problems.extend(copies.problems())
    result.seconds = time.perf_counter() - started
    return result


def _by_source(
    refs: list[QuarantineRef], problems: list[Problem]
) -> dict[str, list[QuarantineRef]]:
    """The files grouped by source key id; a name without one can't be replayed."""
    groups: dict[str, list[QuarantineRef]] = defaultdict(list)
    for ref in refs:
        if ref.keyid is None:
            problems.append(
                Problem(
                    ref.key,
                    "name does not follow the layout (no source key id); skipped",
                    "warning",
                )
            )
            continue
        groups[ref.keyid].append(ref)
    return groups
