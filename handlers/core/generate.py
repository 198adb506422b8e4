"""Deterministic synthetic transactions, with labelled faults that each break one rule."""

from __future__ import annotations

import bisect
import functools
import itertools
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from schemas import PRODUCTS
from schemas.transaction import (
    CHECK_DECIMAL_PLACES,
    CHECK_JSON_OBJECT,
    CHECK_JSON_SYNTAX,
    CHECK_NOT_AFTER,
    CHECK_NOT_NULL,
    CHECK_UNIQUE,
    CHECK_UTF8,
    DATAFRAME_CHECK_COLUMNS,
    EARLIEST_INSTANT,
    FIELDS,
    MAX_TEXT_LENGTH,
    PRICE_MAX,
    QUANTITY_MAX,
)

DEFAULT_WINDOW = timedelta(minutes=5)
CUSTOMER_POOL = 500
_TOTAL_CHECK = next(iter(DATAFRAME_CHECK_COLUMNS))


@dataclass(frozen=True)
class Fault:
    """Which rule an injected fault breaks: the column and the check that must catch it."""

    name: str
    column: str | None
    check: str  # prefix of the check name reported in quarantine


@dataclass(frozen=True)
class Generated:
    """One line of a batch: a record (dict) or raw bytes, and the fault it carries."""

    payload: dict[str, Any] | bytes
    fault: Fault | None = None


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


class _Weighted:
    """`rng.choices(values, weights)[0]` with the cumulative weights summed once.

    Same arithmetic and the same single `rng.random()` draw as `random.choices`, so the
    output for a seed is unchanged; it just skips re-summing the weights per record.
    """

    def __init__(self, values: list[Any], weights: list[float]) -> None:
        self.values = values
        self.cum_weights = list(itertools.accumulate(weights))
        self.total = self.cum_weights[-1] + 0.0
        self.hi = len(values) - 1

    def pick(self, rng: random.Random) -> Any:
        return self.values[bisect.bisect(self.cum_weights, rng.random() * self.total, 0, self.hi)]


# Popularity falls off with catalog position: a few products sell most.
_PRODUCT = _Weighted(list(PRODUCTS), [1 / (i + 1) for i in range(len(PRODUCTS))])
_QUANTITY = _Weighted([1, 2, 3, 4, 5, 10, 25], [60, 20, 8, 5, 4, 2, 1])
_DISCOUNT = _Weighted([Decimal(0), Decimal("0.10"), Decimal("0.25")], [80, 15, 5])


@functools.cache
def _price(list_price: Decimal, discount: Decimal) -> Decimal:
    return _money(list_price * (1 - discount))


@functools.cache
def _total(price: Decimal, quantity: int) -> Decimal:
    return _money(price * quantity)


def _clean_record(rng: random.Random, instant: datetime) -> dict[str, Any]:
    product = _PRODUCT.pick(rng)
    quantity = _QUANTITY.pick(rng)
    discount = _DISCOUNT.pick(rng)
    price = _price(product.list_price, discount)
    return {
        "transaction_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "timestamp": instant.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "customer_id": f"C{rng.randrange(CUSTOMER_POOL):06d}",
        "product_id": product.product_id,
        "product_name": product.name,
        "category": product.category,
        "quantity": quantity,
        "price": price,
        "total_amount": _total(price, quantity),
    }


Mutator = Callable[[dict[str, Any], random.Random, datetime, list[dict[str, Any]]], Any]


def _set(field: str, value: Any) -> Mutator:
    def mutate(rec: dict[str, Any], *_: Any) -> dict[str, Any]:
        rec[field] = value
        return rec

    return mutate


def _drop(field: str) -> Mutator:
    def mutate(rec: dict[str, Any], *_: Any) -> dict[str, Any]:
        del rec[field]
        return rec

    return mutate


def _raw(data: bytes) -> Mutator:
    return lambda *_: data


def _duplicate(rec: dict[str, Any], _rng: random.Random, _t: datetime, prior: list) -> Any:
    clean = [p for p in prior if isinstance(p, dict)]
    if not clean:
        return None  # nothing to duplicate yet: caller picks another fault
    rec["transaction_id"] = clean[-1]["transaction_id"]
    return rec


def _truncate(rec: dict[str, Any], *_: Any) -> bytes:
    return _encode(rec)[: len(_encode(rec)) // 2]


def _total_off(rec: dict[str, Any], *_: Any) -> dict[str, Any]:
    rec["total_amount"] = rec["total_amount"] + Decimal("0.01")
    return rec


def _future(rec: dict[str, Any], _rng: random.Random, now: datetime, _p: list) -> Any:
    rec["timestamp"] = (now + timedelta(days=1)).isoformat()
    return rec


# name -> (mutation, column, check prefix). Together they cover every rule.
_FAULTS: dict[str, tuple[Mutator, str | None, str]] = {
    **{f"missing_{f}": (_drop(f), f, CHECK_NOT_NULL) for f in FIELDS},
    **{f"null_{f}": (_set(f, None), f, CHECK_NOT_NULL) for f in FIELDS},
    "blank_transaction_id": (_set("transaction_id", "   "), "transaction_id", "not_blank"),
    "blank_customer_id": (_set("customer_id", "\u00a0\t"), "customer_id", "not_blank"),
    "empty_product_id": (_set("product_id", ""), "product_id", "str_length"),
    "long_product_name": (
        _set("product_name", "x" * (MAX_TEXT_LENGTH + 1)),
        "product_name",
        "str_length",
    ),
    "numeric_customer_id": (_set("customer_id", 12345), "customer_id", "type(string)"),
    "duplicate_transaction_id": (_duplicate, "transaction_id", CHECK_UNIQUE),
    "timestamp_not_iso": (_set("timestamp", "26/11/2026 10:00"), "timestamp", "iso8601"),
    "timestamp_impossible_date": (
        _set("timestamp", "2025-02-30T10:00:00Z"),
        "timestamp",
        "iso8601",
    ),
    "timestamp_in_future": (_future, "timestamp", CHECK_NOT_AFTER),
    "timestamp_before_2000": (
        _set("timestamp", (EARLIEST_INSTANT - timedelta(seconds=1)).isoformat()),
        "timestamp",
        "not_before",
    ),
    "unknown_category": (_set("category", "Weapons"), "category", "in_catalog"),
    "quantity_as_string": (_set("quantity", "2"), "quantity", "type(integer)"),
    "quantity_as_float": (_set("quantity", 2.5), "quantity", "type(integer)"),
    "quantity_as_bool": (_set("quantity", True), "quantity", "type(integer)"),
    "quantity_zero": (_set("quantity", 0), "quantity", "greater_than_or_equal_to"),
    "quantity_too_large": (_set("quantity", QUANTITY_MAX + 1), "quantity", "less_than_or_equal_to"),
    "price_as_string": (_set("price", "19.99"), "price", "type(number)"),
    "price_as_bool": (_set("price", False), "price", "type(number)"),
    "price_negative": (_set("price", Decimal("-5.00")), "price", "greater_than"),
    "price_too_large": (_set("price", Decimal(PRICE_MAX) + 1), "price", "less_than_or_equal_to"),
    "price_three_decimals": (_set("price", Decimal("19.999")), "price", CHECK_DECIMAL_PLACES),
    "total_mismatch": (_total_off, "total_amount", _TOTAL_CHECK),
    "total_as_string": (_set("total_amount", "10.00"), "total_amount", "type(number)"),
    "truncated_line": (_truncate, None, CHECK_JSON_SYNTAX),
    "nan_token": (_raw(b'{"transaction_id": "x", "price": NaN}'), None, CHECK_JSON_SYNTAX),
    "invalid_utf8": (_raw(b'{"transaction_id": "\xff\xfe"}'), None, CHECK_UTF8),
    "not_an_object": (_raw(b'["not", "an", "object"]'), None, CHECK_JSON_OBJECT),
}

FAULTS: tuple[Fault, ...] = tuple(Fault(n, col, chk) for n, (_, col, chk) in _FAULTS.items())
FAULTS_BY_NAME: dict[str, Fault] = {f.name: f for f in FAULTS}


def generate_batch(
    count: int,
    *,
    seed: int,
    reference_time: datetime,
    fault_rate: float = 0.0,
    window: timedelta = DEFAULT_WINDOW,
) -> list[Generated]:
    """`count` lines spread over `window` ending at `reference_time`; same inputs, same lines."""
    if count < 0:
        raise ValueError("count must be >= 0")
    if not 0.0 <= fault_rate <= 1.0:
        raise ValueError("fault_rate must be within [0, 1]")
    reference_time = reference_time.astimezone(UTC)
    # A string seed is hashed deterministically (unlike hash()), across processes too.
    rng = random.Random(f"{seed}|{reference_time.isoformat()}")
    span = window.total_seconds()
    offsets = sorted(rng.random() * span for _ in range(count))
    names = list(_FAULTS)
    out: list[Generated] = []
    prior: list[Any] = []
    for offset in offsets:
        instant = reference_time - window + timedelta(seconds=offset)
        record = _clean_record(rng, instant)
        if rng.random() < fault_rate:
            generated = _inject(record, rng, reference_time, prior, names)
        else:
            generated = Generated(record)
        out.append(generated)
        if generated.fault is None:
            prior.append(record)
    return out


def _inject(
    record: dict[str, Any],
    rng: random.Random,
    now: datetime,
    prior: list[Any],
    names: list[str],
) -> Generated:
    while True:
        name = rng.choice(names)
        mutate, column, check = _FAULTS[name]
        payload = mutate(dict(record), rng, now, prior)
        if payload is not None:
            return Generated(payload, Fault(name, column, check))


def _encode(record: dict[str, Any]) -> bytes:
    # orjson would print floats; Decimals are written from their digits instead.
    plain = {
        k: (orjson.Fragment(format(v, "f")) if isinstance(v, Decimal) else v)
        for k, v in record.items()
    }
    return orjson.dumps(plain)


def to_ndjson(lines: Iterable[Generated]) -> bytes:
    """Encode a batch as newline-delimited JSON bytes."""
    return b"".join(
        (g.payload if isinstance(g.payload, bytes) else _encode(g.payload)) + b"\n" for g in lines
    )


def batch_key(reference_time: datetime, seed: int) -> str:
    """Deterministic `raw/` key of the batch for a reference time."""
    t = reference_time.astimezone(UTC)
    return f"raw/dt={t:%Y-%m-%d}/batch-{t:%Y%m%dT%H%M%SZ}-s{seed}.jsonl"
