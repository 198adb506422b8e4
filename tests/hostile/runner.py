"""Child process for hostile-input tests: one transform under an address-space cap."""

from __future__ import annotations

import resource
import sys
from collections import Counter
from pathlib import Path

import orjson


def main(lake: str, key: str, cap: int) -> None:
    if cap:
        # Set here, after the interpreter started but before pyarrow/pandera load, so
        # the cap covers every library's reservations, as a Lambda's memory would.
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    from handlers.core.entries import decode_exact
    from handlers.core.storage import LocalStorage
    from handlers.core.transform import transform_object

    result = transform_object(LocalStorage(lake), key)
    # Entries are counted by streaming the files: an all-bad file has many.
    entries = 0
    checks: Counter[str] = Counter()
    for path in sorted(Path(lake, "quarantine").rglob("*.jsonl")):
        with path.open("rb") as lines:
            for line in lines:
                entry = decode_exact(line)  # exact: values like 1E+999999999 stay
                entries += 1
                checks.update({e["check"] for e in entry["errors"]})
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    summary = {**result.to_dict(), "entries": entries, "checks": dict(checks)}
    print(orjson.dumps({**summary, "peak_rss_mb": peak_kib // 1024}).decode())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
