"""An independent, record-at-a-time statement of the contract, for tests to compare against."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from schemas.catalog import CATEGORIES

TEXT = ("transaction_id", "customer_id", "product_id", "product_name")
FIELDS = (*TEXT, "timestamp", "category", "quantity", "price", "total_amount")
ISO = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
    r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)?"
)


class _Bad(ValueError):
    pass


def _no_constants(name: str) -> Any:
    raise _Bad(name)


def parse_line(line: bytes) -> dict[str, Any] | None:
    """The object a raw line holds, numbers as Decimal; None if it is not a JSON object."""
    try:
        value = json.loads(line.decode("utf-8"), parse_float=Decimal, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def instant(value: Any) -> datetime | None:
    """The UTC instant of a contract timestamp, or None if it is not one."""
    if not isinstance(value, str) or not ISO.fullmatch(value):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _places(d: Decimal) -> int:
    # Counted on the digits themselves: normalize() would round past 28 digits.
    _sign, digits, exponent = d.as_tuple()
    kept = list(digits)
    while isinstance(exponent, int) and exponent < 0 and len(kept) > 1 and kept[-1] == 0:
        kept.pop()
        exponent += 1
    return max(-int(exponent), 0)


def _money(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    d = Decimal(value)
    if abs(d) > Decimal(10) ** 20:
        return None  # far out of range; avoids Decimal context rounding below
    return d if _places(d) <= 2 else None


def is_valid(obj: dict[str, Any] | None, landed: datetime) -> bool:
    """Whether one record satisfies every per-record rule (uniqueness is per file)."""
    if obj is None:
        return False
    if any(obj.get(f) is None for f in FIELDS):
        return False
    for f in TEXT:
        v = obj[f]
        if not isinstance(v, str) or not 1 <= len(v) <= 256 or not v.strip():
            return False
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            return False
    if not isinstance(obj["category"], str) or obj["category"] not in CATEGORIES:
        return False
    q = obj["quantity"]
    if type(q) is not int or not 1 <= q <= 10_000:
        return False
    price, total = _money(obj["price"]), _money(obj["total_amount"])
    if price is None or total is None:
        return False
    if not 0 < price <= 1_000_000 or total <= 0 or total != q * price:
        return False
    t = instant(obj["timestamp"])
    earliest = datetime(2000, 1, 1, tzinfo=UTC)
    return t is not None and earliest <= t <= landed.astimezone(UTC) + timedelta(minutes=5)


def expected_outcome(lines: list[bytes], landed: datetime) -> tuple[list[int], list[int]]:
    """(processed, quarantined) line positions among non-blank lines, first valid id wins."""
    processed, quarantined, seen = [], [], set()
    position = 0
    for line in lines:
        if not line.strip(b" \t\r\n"):
            continue
        obj = parse_line(line.strip(b" \t\r\n"))
        if is_valid(obj, landed) and obj["transaction_id"] not in seen:
            seen.add(obj["transaction_id"])
            processed.append(position)
        else:
            quarantined.append(position)
        position += 1
    return processed, quarantined
