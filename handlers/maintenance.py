"""Lambda entry point: a scheduled event runs table maintenance (compact, expire, orphans)."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from handlers.core.errors import ConfigError
from handlers.core.maintain import (
    DEFAULT_ORPHAN_MIN_AGE_HOURS,
    DEFAULT_SNAPSHOT_RETENTION_HOURS,
    DEFAULT_TARGET_FILE_MB,
    MaintainSettings,
    maintain,
)
from handlers.core.storage import open_storage
from handlers.core.table import GLUE_DATABASE_ENV, TABLE_NAME_ENV

log = logging.getLogger("pipeline.maintenance")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class MaintenanceConfig:
    """The maintenance function's environment, read and checked once per invocation."""

    lake_url: str
    glue_database: str
    table: str
    settings: MaintainSettings
    stack: str
    log_level: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MaintenanceConfig:
        env = os.environ if env is None else env
        lake = env.get("LAKE_URL", "").strip()
        if not lake.startswith("s3://"):
            raise ConfigError("LAKE_URL", f"expected s3://<bucket>, got {lake!r}")
        level = env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
        if level not in LOG_LEVELS:
            raise ConfigError("LOG_LEVEL", f"expected one of {', '.join(LOG_LEVELS)}, got {level}")
        return cls(
            lake_url=lake,
            glue_database=env.get(GLUE_DATABASE_ENV, ""),
            table=env.get(TABLE_NAME_ENV, ""),
            settings=MaintainSettings(
                target_file_mb=int(_number(env, "TARGET_FILE_MB", DEFAULT_TARGET_FILE_MB)),
                snapshot_retention_hours=_number(
                    env, "SNAPSHOT_RETENTION_HOURS", DEFAULT_SNAPSHOT_RETENTION_HOURS
                ),
                orphan_min_age_hours=_number(
                    env, "ORPHAN_MIN_AGE_HOURS", DEFAULT_ORPHAN_MIN_AGE_HOURS
                ),
            ),
            stack=env.get("STACK", "local"),
            log_level=level,
        )


def _number(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as e:
        raise ConfigError(key, f"expected a number, got {raw!r}") from e
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(key, f"must be a positive number, got {raw!r}")
    if key == "TARGET_FILE_MB" and value != int(value):
        raise ConfigError(key, f"expected a whole number of MB, got {raw!r}")
    return value


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Maintain the stack's table once; the EventBridge schedule's event carries nothing needed."""
    try:
        config = MaintenanceConfig.from_env()
    except ConfigError as e:
        # The settings name the variable; the infra tier sets them from Pulumi.<stack>.yaml.
        raise ConfigError(e.key, f"{e.problem} (maintenance function environment)") from e
    logging.getLogger().setLevel(config.log_level)
    result = maintain(open_storage(config.lake_url), config.settings, on_progress=log.info)
    summary = {
        "message": "maintained",
        "stack": config.stack,
        "scheduled_time": event.get("time") if isinstance(event, dict) else None,
        **result.to_dict(),
    }
    print(json.dumps(summary, default=str))
    return summary
