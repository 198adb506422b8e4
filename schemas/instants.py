"""ISO-8601 text to UTC instants, and the parser the contract's timestamp checks use."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as arrow
import pyarrow.compute as pc

INSTANT_TYPE = arrow.timestamp("us", tz="UTC")

# Anchored at both ends: Arrow's regex match is a search, pandera's str_matches a prefix match.
ISO8601_PATTERN = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)?$"
_ISO8601 = re.compile(ISO8601_PATTERN)

Values = pd.Series | arrow.Array | arrow.ChunkedArray
InstantParser = Callable[[Values], arrow.TimestampArray]


def parse_instants(values: Values) -> arrow.TimestampArray:
    """Parse ISO-8601 strings to UTC instants; null where a value is not a valid instant.

    Offset-less values mean UTC. The vectorised Arrow cast handles clean stretches of
    the column; a stretch with an impossible date (e.g. Feb 30) is split until the bad
    values are parsed one by one, so one bad value cannot poison its neighbours.
    """
    return _parse_instants(arrow_strings(values))


def arrow_strings(values: Values) -> arrow.Array | arrow.ChunkedArray:
    """The values as Arrow strings: a pandas Arrow column's own data, no copy."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.ArrowDtype):
        values = values.array.__arrow_array__()
    if isinstance(values, arrow.Array | arrow.ChunkedArray):
        return values if values.type == arrow.string() else values.cast(arrow.string())
    return arrow.array(values, type=arrow.string(), from_pandas=True)


# The parser the timestamp checks call. A transform sets its own for each validation
# (one that already holds the chunk's parsed column), so the checks and the writer parse
# the column once; context-local, so a thread working ahead never sees another's.
_PARSER: ContextVar[InstantParser] = ContextVar("instant_parser", default=parse_instants)


def instant_parser() -> InstantParser:
    """The parser in effect: `parse_instants`, unless a caller set another."""
    return _PARSER.get()


@contextmanager
def parsing_instants_with(parser: InstantParser) -> Iterator[None]:
    """Within the block, the contract's timestamp checks parse with `parser`.

    `parser` must give the same result as `parse_instants` for any input.
    """
    token = _PARSER.set(parser)
    try:
        yield
    finally:
        _PARSER.reset(token)


def _parse_instants(strings: arrow.Array | arrow.ChunkedArray) -> arrow.TimestampArray:
    if isinstance(strings, arrow.ChunkedArray):
        strings = strings.combine_chunks()
    well_formed = pc.fill_null(pc.match_substring_regex(strings, ISO8601_PATTERN), False)
    if pc.all(pc.ends_with(strings, "Z")).as_py() is not False:
        normalised = strings  # every value carries its offset: nothing to append
    else:
        has_offset = pc.match_substring_regex(strings, r"(Z|[+-]\d{2}(:?\d{2})?)$")
        normalised = pc.if_else(has_offset, strings, pc.binary_join_element_wise(strings, "Z", ""))
    if pc.all(well_formed).as_py():
        candidates = normalised
    else:
        candidates = pc.if_else(well_formed, normalised, arrow.scalar(None, arrow.string()))
    return _cast_instants(candidates)


def _cast_instants(candidates: arrow.Array) -> arrow.TimestampArray:
    try:
        return pc.cast(candidates, INSTANT_TYPE)
    except (arrow.ArrowInvalid, arrow.ArrowNotImplementedError):
        pass
    # Split off the values no calendar can refuse: they cast in one go, and only the
    # rest (Feb 29-31, hour 24, year 9999...) is bisected down to the ones that fail.
    plain = pc.fill_null(pc.match_substring_regex(candidates, _PLAIN_INSTANT_PATTERN), False)
    mask = plain.to_numpy(zero_copy_only=False)
    if not mask.any():
        return _bisect_instants(candidates)
    parts = [_bisect_instants(candidates.filter(plain)), _bisect_instants(candidates.filter(~mask))]
    positions = np.concatenate([np.flatnonzero(mask), np.flatnonzero(~mask)])
    back = np.empty(len(positions), dtype=np.int64)
    back[positions] = np.arange(len(positions))
    return arrow.concat_arrays(parts).take(arrow.array(back))


def _bisect_instants(candidates: arrow.Array) -> arrow.TimestampArray:
    try:
        return pc.cast(candidates, INSTANT_TYPE)
    except (arrow.ArrowInvalid, arrow.ArrowNotImplementedError):
        pass
    if len(candidates) <= 64:
        return arrow.array([_parse_one(v) for v in candidates.to_pylist()], INSTANT_TYPE)
    half = len(candidates) // 2
    return arrow.concat_arrays(
        [_bisect_instants(candidates.slice(0, half)), _bisect_instants(candidates.slice(half))]
    )


# Instants every calendar accepts: years 0002-9998 (an offset cannot push them out of
# range), real days of month (Feb 29 aside), hours 00-23, minutes and seconds 00-59,
# offsets within a day.
_PLAIN_INSTANT_PATTERN = (
    r"^(?:000[2-9]|00[1-9]\d|0[1-9]\d\d|[1-8]\d{3}|9[0-8]\d\d|99[0-8]\d|999[0-8])-"
    r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1\d|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)"
    r"|(?:0[13578]|1[02])-31)"
    r"[T ](?:[01]\d|2[0-3]):[0-5]\d"
    r"(?::[0-5]\d(?:\.\d{1,6})?)?(?:Z|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)?$"
)


def _parse_one(value: str | None) -> datetime | None:
    if value is None or not _ISO8601.match(value):
        return None
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # e.g. 9999-12-31T23:00-05:00 is past year 9999
        return None
