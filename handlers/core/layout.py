"""Where everything lives in the lake: deterministic names derived from the source object."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime

from handlers.core.storage import QUARANTINE_PREFIX

_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")
# The raw file names the transformer recognises (longest first). The S3 notification
# that triggers it is derived from this list (trigger_suffixes), so the two cannot disagree.
RAW_SUFFIXES = (".json.gz", ".jsonl.gz", ".ndjson.gz", ".jsonl", ".ndjson", ".json", ".gz")


def trigger_suffixes(suffixes: tuple[str, ...] = RAW_SUFFIXES) -> tuple[str, ...]:
    """The fewest suffix filters that match every recognised name, none a suffix of another.

    S3 rejects a notification whose filters overlap (one suffix ends another) on one
    prefix, so `.json.gz` is covered by `.gz` rather than listed beside it.
    """
    return tuple(sorted(s for s in suffixes if not any(s != t and s.endswith(t) for t in suffixes)))


def key_id(source_key: str) -> str:
    """Stable id of a source key (12 hex digits)."""
    return hashlib.sha256(source_key.encode("utf-8")).hexdigest()[:12]


def version_token(version: str) -> str:
    """Short token of an object version (ETag, VersionId or local stamp)."""
    return hashlib.sha256(version.encode("utf-8")).hexdigest()[:10]


def stem(source_key: str) -> str:
    """Readable, filesystem-safe base name of the source key."""
    name = source_key.rsplit("/", 1)[-1]
    for ext in RAW_SUFFIXES:
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return (_UNSAFE.sub("_", name) or "object")[:80]


def output_base(source_key: str, version: str) -> str:
    """Common part of every output name of one version of one source object."""
    return f"{stem(source_key)}.{key_id(source_key)}.{version_token(version)}"


def quarantine_key(base: str, chunk: int, landed: datetime, tag: str = "") -> str:
    """Quarantine file of one chunk, under the day the source object landed."""
    suffix = f".{tag}" if tag else ""
    return f"{QUARANTINE_PREFIX}dt={landed:%Y-%m-%d}/{base}.c{chunk:05d}{suffix}.jsonl"


# Parsing is the inverse of the builders above; it lives here so the two cannot drift.
_QUARANTINE_KEY = re.compile(
    rf"^{re.escape(QUARANTINE_PREFIX)}dt=(?P<day>\d{{4}}-\d{{2}}-\d{{2}})/(?P<name>[^/]+)\.jsonl$"
)
# <stem>.<key id>.<version token>.c<chunk>[.<tag>]
_OUTPUT_NAME = re.compile(
    r"^(?P<base>.+\.(?P<keyid>[0-9a-f]{12})\.(?P<vtoken>[0-9a-f]{10}))"
    r"\.c(?P<chunk>\d{5,})(?:\.(?P<tag>[A-Za-z0-9_-]+))?$"
)


@dataclass(frozen=True)
class OutputName:
    """What an output name built from `output_base` says: its base, key id, version, chunk."""

    base: str  # output_base(source_key, version)
    key_id: str
    version_token: str
    chunk: int
    tag: str = ""


@dataclass(frozen=True)
class QuarantineName:
    """What a quarantine key says: its landing day, and its output name if it follows the layout."""

    day: date
    name: OutputName | None


def parse_output_name(name: str) -> OutputName | None:
    """`<base>.c<chunk>[.<tag>]` back into its parts (no extension); None if foreign."""
    m = _OUTPUT_NAME.match(name)
    if not m:
        return None
    return OutputName(m["base"], m["keyid"], m["vtoken"], int(m["chunk"]), m["tag"] or "")


def parse_quarantine_key(key: str) -> QuarantineName | None:
    """The inverse of `quarantine_key`; None for a key outside `quarantine/dt=DAY/*.jsonl`.

    A key in that place whose name does not follow the layout has `name` None: it is a
    quarantine file, but no source version can be told from it.
    """
    m = _QUARANTINE_KEY.match(key)
    if not m:
        return None
    try:
        day = date.fromisoformat(m["day"])
    except ValueError:
        return None
    return QuarantineName(day, parse_output_name(m["name"]))
