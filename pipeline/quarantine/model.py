"""What the quarantine tools work with: entries, selections, problems, rule labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson

from handlers.core.entries import jsonable


def rule_label(column: str | None, check: str) -> str:
    """`column:check`, or just the check for record-level failures (same as the transformer)."""
    return f"{column}:{check}" if column else str(check)


def entry_rules(entry: dict[str, Any]) -> list[str]:
    """Distinct rule labels an entry breaks, in the order they were reported."""
    labels = [rule_label(e.get("column"), e.get("check", "?")) for e in entry.get("errors", [])]
    return list(dict.fromkeys(labels))


def value_text(value: Any, limit: int = 120) -> str:
    """A failing value as JSON text (so "10.00" and 10.00 stay distinct), shortened."""
    text = orjson.dumps(jsonable(value)).decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Selection:
    """Which entries a command works on. Days are landing days (`dt=`), inclusive."""

    since: date | None = None
    until: date | None = None
    rules: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    entry_ids: frozenset[str] = frozenset()

    def day_in_range(self, day: date) -> bool:
        return (self.since is None or day >= self.since) and (
            self.until is None or day <= self.until
        )

    def matches(self, entry: dict[str, Any]) -> bool:
        if self.entry_ids and entry.get("entry_id") not in self.entry_ids:
            return False
        if self.sources and not any(_source_matches(p, entry) for p in self.sources):
            return False
        if self.rules:
            errors = entry.get("errors") or []
            return any(_rule_matches(r, e) for r in self.rules for e in errors)
        return True


EVERY_ENTRY = Selection()  # frozen: a shared default is safe


def _source_matches(pattern: str, entry: dict[str, Any]) -> bool:
    from fnmatch import fnmatchcase

    source = str(entry.get("source_key", ""))
    return source == pattern or fnmatchcase(source, pattern)


def _rule_matches(rule: str, error: dict[str, Any]) -> bool:
    """`price`, `type(number)`, `price:type(number)` and `price:type` all select that failure."""
    column, check = error.get("column"), str(error.get("check", ""))
    label = rule_label(column, check)
    return rule in (label, column, check) or label.startswith(rule)


def unknown_rules(rules: Sequence[str]) -> list[str]:
    """The `--rule` values that select no rule of the contract (so never any entry)."""
    from schemas.transaction import known_rules

    known = [{"column": column, "check": check} for column, check in known_rules()]
    return [r for r in rules if not any(_rule_matches(r, error) for error in known)]


def known_rule_labels() -> list[str]:
    """Every rule label the contract defines, as `summary` prints them."""
    from schemas.transaction import known_rules

    return [rule_label(column, check) for column, check in known_rules()]


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """Something in the lake that could not be used. Errors mean figures may be incomplete."""

    key: str
    detail: str
    severity: str = "error"  # "error": data unreadable; "warning": a foreign object, ignored

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "severity": self.severity, "detail": self.detail}

    def __str__(self) -> str:
        return f"{self.severity}: {self.key}: {self.detail}"


@dataclass
class Item:
    """One line of a quarantine file: the entry, or None when the line is unreadable."""

    line_no: int
    raw: bytes
    entry: dict[str, Any] | None


@dataclass
class QuarantineFile:
    """A quarantine object as read: its lines in order, and what its name says."""

    key: str
    day: date
    items: list[Item]
    base: str | None = None  # <stem>.<keyid>.<vtoken>, when the name follows the layout
    keyid: str | None = None
    chunk: int = 0
    tag: str = ""

    @property
    def entries(self) -> list[dict[str, Any]]:
        return [i.entry for i in self.items if i.entry is not None]


@dataclass(frozen=True)
class QuarantineRef:
    """A quarantine object found by listing, before it is read."""

    key: str
    day: date
    base: str | None
    keyid: str | None
    chunk: int
    tag: str
    vtoken: str | None = None  # version token of the source version the file belongs to


def iso(instant: datetime) -> str:
    """An instant as ISO-8601 UTC text ending in Z."""
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_instant(text: Any) -> datetime | None:
    """An ISO-8601 instant (naive means UTC) as an aware UTC datetime; None if it is not one."""
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value.replace(tzinfo=value.tzinfo or UTC).astimezone(UTC)
