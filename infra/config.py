"""Stack settings: read once from Pulumi config into a typed, validated object."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.layer import RUNTIME_GLIBC, layer_zip_path

PROJECT = "ecommerce"
ROOT = Path(__file__).resolve().parent.parent

# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = frozenset(
    {
        1,
        3,
        5,
        7,
        14,
        30,
        60,
        90,
        120,
        150,
        180,
        365,
        400,
        545,
        731,
        1096,
        1827,
        2192,
        2557,
        2922,
        3288,
        3653,
    }
)
ARCHITECTURES = ("x86_64", "arm64")
ENVIRONMENTS = ("dev", "prod")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Lambda's own platform log lines (START, END, REPORT, init errors).
SYSTEM_LOG_LEVELS = ("DEBUG", "INFO", "WARN")
# Athena refuses a per-query cutoff under 10 MB.
ATHENA_MIN_CUTOFF_BYTES = 10 * 1024 * 1024
_SCHEDULE = re.compile(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\([^()]+\))$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_OWNER = re.compile(r"^[\w.:/=+\-@ ]{1,256}$")  # what AWS allows in a tag value

# The keys each structured setting accepts; anything else is a typo to report.
_GROUP_KEYS: dict[str, frozenset[str]] = {
    "schedule": frozenset({"expression", "enabled"}),
    "generator": frozenset(
        {
            "batchSize",
            "faultRate",
            "memoryMb",
            "timeoutSeconds",
            "architecture",
            "reservedConcurrency",
        }
    ),
    "transformer": frozenset({"memoryMb", "timeoutSeconds", "architecture", "reservedConcurrency"}),
    "storage": frozenset(
        {
            "versioning",
            "kms",
            "forceDestroy",
            "protect",
            "rawExpiryDays",
            "athenaResultsExpiryDays",
            "quarantineExpiryDays",
            "noncurrentVersionExpiryDays",
            "accessLogging",
            "accessLogExpiryDays",
        }
    ),
    "maintenance": frozenset(
        {
            "schedule",
            "enabled",
            "snapshotRetentionHours",
            "orphanMinAgeHours",
            "targetFileMb",
            "memoryMb",
            "timeoutSeconds",
            "architecture",
            "reservedConcurrency",
        }
    ),
}
# Keys of earlier versions that mean nothing now: named in the error with what to do.
_RETIRED_KEYS: dict[str, str] = {
    "catalog": "processed/ is an Iceberg table now (no crawler, no partition projection); "
    "remove ecommerce:catalog from Pulumi.<stack>.yaml",
}


class SettingsError(ValueError):
    """Stack config is missing or invalid; the message names every offending key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid stack config:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class FunctionSettings:
    """Sizing of one Lambda function."""

    memory_mb: int
    timeout_seconds: int
    architecture: str
    # None: no reservation. New accounts have 10 concurrent executions in all and
    # Lambda refuses a reservation that leaves fewer than 10 unreserved.
    reserved_concurrency: int | None


@dataclass(frozen=True)
class MaintenanceSettings:
    """The scheduled Iceberg maintenance: compaction, snapshot expiry, orphan removal."""

    function: FunctionSettings
    schedule_expression: str
    enabled: bool
    snapshot_retention_hours: int
    orphan_min_age_hours: int
    target_file_mb: int


@dataclass(frozen=True)
class Settings:
    """Everything that may differ between stacks, validated."""

    project: str
    stack: str
    environment: str
    region: str
    owner: str
    lambda_runtime: str
    log_level: str
    system_log_level: str
    log_retention_days: int
    schedule_expression: str
    schedule_enabled: bool
    batch_size: int
    fault_rate: float
    generator: FunctionSettings
    transformer: FunctionSettings
    maintenance: MaintenanceSettings
    versioning: bool
    kms: bool
    force_destroy: bool
    protect: bool
    raw_expiry_days: int
    athena_results_expiry_days: int
    quarantine_expiry_days: int
    noncurrent_version_expiry_days: int
    access_logging: bool
    access_log_expiry_days: int
    athena_bytes_scanned_cutoff: int
    alert_email: str | None
    quarantine_rate_alarm_percent: float
    root: Path = field(default=ROOT, compare=False)

    @property
    def name_prefix(self) -> str:
        """Prefix of every physical name, e.g. `ecommerce-dev`."""
        return f"{self.project}-{self.stack}"

    @property
    def glue_database(self) -> str:
        """Glue and Athena allow only lower case, digits and underscores."""
        return re.sub(r"[^a-z0-9_]", "_", f"{self.project}_{self.stack}".lower())

    @property
    def tags(self) -> dict[str, str]:
        return {"project": self.project, "stack": self.stack, "owner": self.owner}

    @property
    def architectures(self) -> tuple[str, ...]:
        """Distinct architectures in use: one layer is built and published per entry."""
        return tuple(sorted({f.architecture for f in self.functions.values()}))

    @property
    def functions(self) -> dict[str, FunctionSettings]:
        """Sizing of every function by role."""
        return {
            "generator": self.generator,
            "transformer": self.transformer,
            "maintenance": self.maintenance.function,
        }

    @property
    def application_log_level(self) -> str:
        """Lambda's name for the handlers' log level (it spells WARNING as WARN)."""
        return "WARN" if self.log_level == "WARNING" else self.log_level

    def layer_zip(self, arch: str) -> Path:
        return layer_zip_path(self.root, arch)


Lookup = Callable[[str], str | None]


def settings_from_mapping(
    values: Mapping[str, Any], *, stack: str, project: str = PROJECT, root: Path = ROOT
) -> Settings:
    """Settings from a `Pulumi.<stack>.yaml`-style mapping (tests, tooling)."""

    def lookup(key: str) -> str | None:
        value = values.get(key)
        if value is None or isinstance(value, str):
            return value
        # Pulumi hands structured and scalar YAML values to programs as JSON text.
        return json.dumps(value)

    return load_settings(lookup, stack=stack, project=project, root=root)


def load_settings(
    lookup: Lookup, *, stack: str, project: str = PROJECT, root: Path = ROOT
) -> Settings:
    """Parse and validate every setting; raise one SettingsError naming each bad key.

    `lookup` maps a fully qualified key (`aws:region`, `ecommerce:owner`) to the raw
    string Pulumi holds for it, or None when unset.
    """
    reader = _Reader(lookup, project)
    r = reader
    environment = r.choice(f"{project}:environment", ENVIRONMENTS)
    generator_group = r.group("generator")
    storage = r.group("storage")
    schedule = r.group("schedule")
    r.retired()
    email = r.optional_text(f"{project}:alertEmail")
    settings = Settings(
        project=project,
        stack=stack,
        environment=environment or "",
        region=r.text("aws:region", pattern=re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")) or "",
        owner=r.text(f"{project}:owner", pattern=_OWNER) or "",
        lambda_runtime=r.choice(f"{project}:lambdaRuntime", tuple(RUNTIME_GLIBC)) or "",
        log_level=r.choice(f"{project}:logLevel", LOG_LEVELS) or "",
        system_log_level=r.choice(f"{project}:systemLogLevel", SYSTEM_LOG_LEVELS) or "",
        log_retention_days=r.retention(f"{project}:logRetentionDays"),
        schedule_expression=r.schedule("schedule.expression", schedule.get("expression")),
        schedule_enabled=r.boolean("schedule.enabled", schedule.get("enabled")),
        batch_size=r.integer("generator.batchSize", generator_group.get("batchSize"), 1, 100_000),
        fault_rate=r.number("generator.faultRate", generator_group.get("faultRate"), 0.0, 1.0),
        generator=_function(r, "generator", generator_group),
        transformer=_function(r, "transformer", r.group("transformer")),
        maintenance=_maintenance(r, r.group("maintenance")),
        **_storage(r, storage),
        athena_bytes_scanned_cutoff=r.scalar_integer(
            f"{project}:athenaBytesScannedCutoff", ATHENA_MIN_CUTOFF_BYTES
        ),
        alert_email=email,
        quarantine_rate_alarm_percent=r.scalar_number(
            f"{project}:quarantineRateAlarmPercent", 0.0, 100.0
        ),
        root=root,
    )
    _check_cross_field(settings, r)
    if r.problems:
        raise SettingsError(r.problems)
    return settings


def _storage(r: _Reader, storage: Mapping[str, Any]) -> dict[str, Any]:
    """The storage group's fields of Settings."""
    return dict(
        versioning=r.boolean("storage.versioning", storage.get("versioning")),
        kms=r.boolean("storage.kms", storage.get("kms")),
        force_destroy=r.boolean("storage.forceDestroy", storage.get("forceDestroy")),
        protect=r.boolean("storage.protect", storage.get("protect")),
        raw_expiry_days=r.integer("storage.rawExpiryDays", storage.get("rawExpiryDays"), 1),
        athena_results_expiry_days=r.integer(
            "storage.athenaResultsExpiryDays", storage.get("athenaResultsExpiryDays"), 1
        ),
        quarantine_expiry_days=r.integer(
            "storage.quarantineExpiryDays", storage.get("quarantineExpiryDays"), 1
        ),
        noncurrent_version_expiry_days=r.integer(
            "storage.noncurrentVersionExpiryDays", storage.get("noncurrentVersionExpiryDays"), 1
        ),
        access_logging=r.boolean("storage.accessLogging", storage.get("accessLogging")),
        access_log_expiry_days=r.integer(
            "storage.accessLogExpiryDays", storage.get("accessLogExpiryDays"), 1
        ),
    )


def _function(r: _Reader, group: str, values: Mapping[str, Any]) -> FunctionSettings:
    return FunctionSettings(
        memory_mb=r.integer(f"{group}.memoryMb", values.get("memoryMb"), 128, 10_240),
        timeout_seconds=r.integer(f"{group}.timeoutSeconds", values.get("timeoutSeconds"), 1, 900),
        architecture=r.choice_value(
            f"{group}.architecture", values.get("architecture"), ARCHITECTURES
        ),
        reserved_concurrency=r.integer(
            f"{group}.reservedConcurrency",
            values.get("reservedConcurrency"),
            1,
            10_000,
            optional=True,
        ),
    )


def _maintenance(r: _Reader, values: Mapping[str, Any]) -> MaintenanceSettings:
    return MaintenanceSettings(
        function=_function(r, "maintenance", values),
        schedule_expression=r.schedule("maintenance.schedule", values.get("schedule")),
        enabled=r.boolean("maintenance.enabled", values.get("enabled")),
        # Athena and pyiceberg readers need the snapshot they started on for a query's length.
        snapshot_retention_hours=r.integer(
            "maintenance.snapshotRetentionHours", values.get("snapshotRetentionHours"), 1, 8760
        ),
        # A file of a commit still in flight, or one a slow reader's snapshot still lists,
        # looks like an orphan; Iceberg's own guidance is to remove none younger than a day.
        orphan_min_age_hours=r.integer(
            "maintenance.orphanMinAgeHours", values.get("orphanMinAgeHours"), 24, 8760
        ),
        # Athena's OPTIMIZE and Iceberg default to 512 MB files; more only slows readers.
        target_file_mb=r.integer("maintenance.targetFileMb", values.get("targetFileMb"), 1, 1024),
    )


def _check_cross_field(s: Settings, r: _Reader) -> None:
    p = s.project
    if s.alert_email is not None and not _EMAIL.match(s.alert_email):
        r.problem(f"{p}:alertEmail", f"is not an email address: {s.alert_email!r}")
    if s.environment == "prod":
        # Production guard rails: losing data or alerts must take a deliberate config change.
        if not s.alert_email:
            r.problem(
                f"{p}:alertEmail",
                "is required in prod: set it with `pulumi config set ecommerce:alertEmail "
                "you@example.com`",
            )
        for key, value, wanted in (
            ("storage.forceDestroy", s.force_destroy, False),
            ("storage.protect", s.protect, True),
            ("storage.versioning", s.versioning, True),
            ("storage.kms", s.kms, True),
            ("storage.accessLogging", s.access_logging, True),
        ):
            if value is not wanted:
                r.problem(f"{p}:{key}", f"must be {str(wanted).lower()} in prod")
    if s.protect and s.force_destroy:
        r.problem(f"{p}:storage.forceDestroy", "cannot be true while storage.protect is true")


class _Reader:
    """Collects every problem instead of stopping at the first one."""

    def __init__(self, lookup: Lookup, project: str) -> None:
        self._lookup = lookup
        self._project = project
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")

    def _full(self, key: str) -> str:
        return key if ":" in key else f"{self._project}:{key}"

    def raw(self, key: str) -> str | None:
        value = self._lookup(key)
        return None if value is None or value.strip() == "" else value

    def retired(self) -> None:
        for name, why in _RETIRED_KEYS.items():
            if self.raw(f"{self._project}:{name}") is not None:
                self.problem(f"{self._project}:{name}", f"is retired: {why}")

    def group(self, name: str) -> dict[str, Any]:
        key = f"{self._project}:{name}"
        raw = self.raw(key)
        if raw is None:
            self.problem(key, "is required")
            return {}
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            self.problem(key, "must be an object (a YAML mapping)")
            return {}
        for unknown in sorted(set(value) - _GROUP_KEYS[name]):
            self.problem(f"{key}.{unknown}", f"unknown key; expected {sorted(_GROUP_KEYS[name])}")
        return value

    # -- values inside structured groups (already JSON-decoded) --

    def integer(
        self,
        key: str,
        value: Any,
        low: int,
        high: int | None = None,
        *,
        optional: bool = False,
    ) -> Any:
        key = self._full(key)
        if value is None and optional:
            return None
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"must be an integer, got {value!r}")
            return 0
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f">= {low}"
            self.problem(key, f"must be {bound}, got {value}")
        return value

    def number(self, key: str, value: Any, low: float, high: float) -> float:
        key = self._full(key)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(key, f"must be a number, got {value!r}")
            return 0.0
        if not low <= value <= high:
            self.problem(key, f"must be between {low} and {high}, got {value}")
        return float(value)

    def boolean(self, key: str, value: Any) -> bool:
        key = self._full(key)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            self.problem(key, f"must be true or false, got {value!r}")
            return False
        return value

    def choice_value(self, key: str, value: Any, choices: tuple[str, ...]) -> str:
        key = self._full(key)
        if value not in choices:
            self.problem(key, f"must be one of {list(choices)}, got {value!r}")
            return ""
        return value

    def schedule(self, key: str, value: Any, *, cron_only: bool = False) -> str:
        key = self._full(key)
        ok = isinstance(value, str) and bool(_SCHEDULE.match(value))
        if ok and cron_only and not value.startswith("cron("):
            ok = False
        if not ok:
            form = "cron(...)" if cron_only else "rate(N minutes|hours|days) or cron(...)"
            self.problem(key, f"must be a schedule expression {form}, got {value!r}")
            return ""
        return value

    # -- top-level scalar keys (raw strings) --

    def text(self, key: str, *, pattern: re.Pattern[str]) -> str | None:
        value = self.raw(key)
        if value is None:
            self.problem(key, "is required")
            return None
        if not pattern.match(value):
            self.problem(key, f"is not valid: {value!r}")
        return value

    def optional_text(self, key: str) -> str | None:
        value = self.raw(key)
        return value.strip() if value is not None else None

    def choice(self, key: str, choices: tuple[str, ...]) -> str | None:
        value = self.raw(key)
        if value is None:
            self.problem(key, f"is required; one of {list(choices)}")
            return None
        return self.choice_value(key, value, choices) or None

    def retention(self, key: str) -> int:
        value = self.scalar_integer(key, 1)
        if value >= 1 and value not in LOG_RETENTION_DAYS:
            self.problem(
                key,
                f"must be a CloudWatch retention period {sorted(LOG_RETENTION_DAYS)}, got {value}",
            )
        return value

    def scalar_integer(self, key: str, low: int) -> int:
        raw = self.raw(key)
        if raw is None:
            self.problem(key, "is required")
            return 0
        return self.integer(key, raw, low)

    def scalar_number(self, key: str, low: float, high: float) -> float:
        raw = self.raw(key)
        if raw is None:
            self.problem(key, "is required")
            return 0.0
        return self.number(key, raw, low, high)


def read_stack_settings() -> Settings:
    """The one place that reads Pulumi config; bad config stops the program with one message."""
    import pulumi

    def lookup(key: str) -> str | None:
        namespace, _, name = key.partition(":")
        return pulumi.Config(namespace).get(name)

    try:
        return load_settings(lookup, stack=pulumi.get_stack(), project=pulumi.get_project())
    except SettingsError as error:
        # RunError: Pulumi prints the message alone, without a Python traceback.
        raise pulumi.RunError(str(error)) from None


__all__ = [
    "PROJECT",
    "FunctionSettings",
    "MaintenanceSettings",
    "Settings",
    "SettingsError",
    "load_settings",
    "read_stack_settings",
    "settings_from_mapping",
]
