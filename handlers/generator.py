"""Lambda entry point: each scheduled invocation writes one batch of transactions to `raw/`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger

from handlers.core.errors import ConfigError
from handlers.core.generate import (
    FAULTS,
    Fault,
    Generated,
    batch_key,
    generate_batch,
    to_ndjson,
)
from handlers.core.lambda_context import LocalContext
from handlers.core.storage import Storage, open_storage

# JSON lines carrying the stack, function name and request id (see handlers/transformer.py).
logger = Logger(service="generator", level=os.environ.get("LOG_LEVEL", "INFO"))
logger.append_keys(stack=os.environ.get("STACK", "local"))

__all__ = [
    "FAULTS",
    "Fault",
    "Generated",
    "GeneratorSettings",
    "batch_key",
    "generate_batch",
    "handler",
    "run_generator",
    "to_ndjson",
]


@dataclass(frozen=True)
class GeneratorSettings:
    """Environment configuration, read once per container."""

    lake_url: str
    batch_size: int
    fault_rate: float
    seed: int

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> GeneratorSettings:
        env = dict(os.environ if env is None else env)
        lake = env.get("LAKE_URL", "").strip()
        if not lake:
            raise ConfigError("LAKE_URL", "not set; expected s3://<bucket>")
        return cls(
            lake_url=lake,
            batch_size=_number(env, "BATCH_SIZE", int, 500, lo=1, hi=1_000_000),
            fault_rate=_number(env, "FAULT_RATE", float, 0.02, lo=0.0, hi=1.0),
            seed=_number(env, "SEED", int, 0, lo=0, hi=2**63),
        )


def _number(env: dict[str, str], key: str, kind: type, default: Any, *, lo: Any, hi: Any) -> Any:
    raw = env.get(key, "")
    if raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError as e:
        raise ConfigError(key, f"expected a {kind.__name__}, got {raw!r}") from e
    if not lo <= value <= hi:
        raise ConfigError(key, f"must be between {lo} and {hi}, got {value}")
    return value


def run_generator(
    storage: Storage,
    *,
    count: int,
    seed: int,
    reference_time: datetime,
    fault_rate: float,
) -> dict[str, Any]:
    """Generate one batch and write it to `raw/`; the CLI and the handler both call this."""
    lines = generate_batch(count, seed=seed, reference_time=reference_time, fault_rate=fault_rate)
    key = batch_key(reference_time, seed)
    storage.put_bytes(key, to_ndjson(lines))
    return {
        "key": key,
        "records": len(lines),
        "faults": sum(1 for g in lines if g.fault is not None),
        "reference_time": reference_time.isoformat(),
    }


@cache
def _settings() -> GeneratorSettings:
    return GeneratorSettings.from_env()


def _reference_time(event: dict[str, Any]) -> datetime:
    # EventBridge scheduled events carry the scheduled time: reruns give the same batch.
    raw = event.get("time") if isinstance(event, dict) else None
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            pass
    return datetime.now(UTC).replace(microsecond=0)


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Write one batch file per invocation."""
    return _handle(event, context if context is not None else LocalContext.make())


@logger.inject_lambda_context(clear_state=False)
def _handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = _settings()
    summary = run_generator(
        open_storage(settings.lake_url),
        count=settings.batch_size,
        seed=settings.seed,
        reference_time=_reference_time(event),
        fault_rate=settings.fault_rate,
    )
    logger.info("generated", extra=summary)
    return summary
