"""The settings object: both stack files load; bad config fails with messages naming the key."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import (
    LOG_RETENTION_DAYS,
    FunctionSettings,
    MaintenanceSettings,
    Settings,
    SettingsError,
    load_settings,
    settings_from_mapping,
)

ROOT = Path(__file__).resolve().parents[2]


def stack_yaml(stack: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]


def load(stack: str, values: dict[str, Any] | None = None) -> Settings:
    return settings_from_mapping(values if values is not None else stack_yaml(stack), stack=stack)


def problems(stack: str, mutate) -> list[str]:
    values = copy.deepcopy(stack_yaml(stack))
    mutate(values)
    with pytest.raises(SettingsError) as caught:
        load(stack, values)
    message = str(caught.value)
    assert message.startswith("invalid stack config:")
    for problem in caught.value.problems:
        assert problem in message
    return caught.value.problems


def test_dev_stack_file_loads() -> None:
    s = load("dev")
    assert (s.environment, s.stack, s.region) == ("dev", "dev", "eu-west-1")
    assert s.glue_database == "ecommerce_dev"
    assert s.name_prefix == "ecommerce-dev"
    assert s.tags == {"project": "ecommerce", "stack": "dev", "owner": "data-platform"}
    assert s.alert_email is None  # blank in the file means not set
    assert s.generator == FunctionSettings(256, 60, "x86_64", None)
    assert s.kms is False and s.versioning is False and s.protect is False
    assert s.access_logging is False
    assert s.maintenance.enabled is False
    assert s.application_log_level == "DEBUG" and s.system_log_level == "INFO"
    assert s.layer_zip("x86_64") == ROOT / "build" / "layer-x86_64.zip"


def test_prod_stack_file_loads() -> None:
    s = load("prod")
    assert s.environment == "prod"
    assert s.glue_database == "ecommerce_prod"
    assert s.alert_email == "data-oncall@example.com"
    assert s.transformer.architecture == "arm64"
    assert s.generator.reserved_concurrency == 1
    assert (s.kms, s.versioning, s.protect, s.force_destroy) == (True, True, True, False)
    assert s.access_logging is True and s.access_log_expiry_days == 365
    assert s.maintenance == MaintenanceSettings(
        function=FunctionSettings(3008, 900, "arm64", 1),
        schedule_expression="cron(30 2 * * ? *)",
        enabled=True,
        snapshot_retention_hours=168,
        orphan_min_age_hours=72,
        target_file_mb=256,
    )
    assert s.architectures == ("arm64",)
    assert s.functions["maintenance"] is s.maintenance.function


def test_stack_names_become_valid_glue_names() -> None:
    s = settings_from_mapping(stack_yaml("dev"), stack="Feature-42.x")
    assert s.glue_database == "ecommerce_feature_42_x"


def test_negative_retention_is_rejected_naming_the_key() -> None:
    found = problems("dev", lambda v: v.__setitem__("ecommerce:logRetentionDays", -1))
    assert found == ["ecommerce:logRetentionDays: must be >= 1, got -1"]


def test_retention_must_be_a_cloudwatch_period() -> None:
    found = problems("dev", lambda v: v.__setitem__("ecommerce:logRetentionDays", 8))
    assert len(found) == 1 and found[0].startswith("ecommerce:logRetentionDays: must be a Cloud")
    assert 7 in LOG_RETENTION_DAYS and 8 not in LOG_RETENTION_DAYS


def test_prod_without_alert_email_is_rejected() -> None:
    found = problems("prod", lambda v: v.pop("ecommerce:alertEmail"))
    assert len(found) == 1
    assert found[0].startswith("ecommerce:alertEmail: is required in prod")
    assert "pulumi config set ecommerce:alertEmail" in found[0]


def test_blank_alert_email_counts_as_missing_in_prod() -> None:
    found = problems("prod", lambda v: v.__setitem__("ecommerce:alertEmail", "  "))
    assert found[0].startswith("ecommerce:alertEmail: is required in prod")


def test_dev_alert_email_is_optional_but_checked() -> None:
    values = stack_yaml("dev")
    values["ecommerce:alertEmail"] = "me@example.com"
    assert load("dev", values).alert_email == "me@example.com"
    found = problems("dev", lambda v: v.__setitem__("ecommerce:alertEmail", "not-an-email"))
    assert found == ["ecommerce:alertEmail: is not an email address: 'not-an-email'"]


@pytest.mark.parametrize(
    ("group", "key", "value", "expected"),
    [
        ("generator", "architecture", "sparc", "ecommerce:generator.architecture: must be one of"),
        ("generator", "memoryMb", 64, "ecommerce:generator.memoryMb: must be between 128"),
        ("transformer", "timeoutSeconds", 901, "ecommerce:transformer.timeoutSeconds: must be"),
        ("transformer", "reservedConcurrency", 0, "ecommerce:transformer.reservedConcurrency:"),
        ("generator", "faultRate", 1.5, "ecommerce:generator.faultRate: must be between 0.0"),
        ("generator", "batchSize", "many", "ecommerce:generator.batchSize: must be an integer"),
        ("schedule", "expression", "every 5 minutes", "ecommerce:schedule.expression: must be"),
        ("schedule", "enabled", "yes", "ecommerce:schedule.enabled: must be true or false"),
        ("storage", "rawExpiryDays", 0, "ecommerce:storage.rawExpiryDays: must be >= 1"),
        ("storage", "quarantineExpiryDays", -3, "ecommerce:storage.quarantineExpiryDays:"),
        ("storage", "accessLogging", "maybe", "ecommerce:storage.accessLogging: must be true"),
        ("storage", "accessLogExpiryDays", 0, "ecommerce:storage.accessLogExpiryDays: must be"),
        ("storage", "athenaResultsExpiryDays", 0, "ecommerce:storage.athenaResultsExpiryDays:"),
        ("maintenance", "schedule", "nightly", "ecommerce:maintenance.schedule: must be a sche"),
        ("maintenance", "enabled", "on", "ecommerce:maintenance.enabled: must be true or false"),
        ("maintenance", "snapshotRetentionHours", 0, "ecommerce:maintenance.snapshotRetentionH"),
        ("maintenance", "targetFileMb", 4096, "ecommerce:maintenance.targetFileMb: must be betw"),
        ("maintenance", "architecture", "mips", "ecommerce:maintenance.architecture: must be one"),
        ("maintenance", "memoryMb", 64, "ecommerce:maintenance.memoryMb: must be between 128"),
    ],
)
def test_bad_values_are_rejected_naming_the_key(
    group: str, key: str, value: Any, expected: str
) -> None:
    found = problems("dev", lambda v: v[f"ecommerce:{group}"].__setitem__(key, value))
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_a_typo_in_a_group_key_is_reported() -> None:
    found = problems("dev", lambda v: v["ecommerce:generator"].__setitem__("memroyMb", 512))
    assert found == [
        "ecommerce:generator.memroyMb: unknown key; expected "
        "['architecture', 'batchSize', 'faultRate', 'memoryMb', 'reservedConcurrency', "
        "'timeoutSeconds']"
    ]


def test_missing_keys_are_reported_as_required() -> None:
    def drop(v: dict[str, Any]) -> None:
        del v["ecommerce:owner"]
        del v["ecommerce:storage"]
        del v["aws:region"]

    found = problems("dev", drop)
    assert "ecommerce:owner: is required" in found
    assert "ecommerce:storage: is required" in found
    assert "aws:region: is required" in found


def test_athena_cutoff_has_athenas_minimum() -> None:
    found = problems("dev", lambda v: v.__setitem__("ecommerce:athenaBytesScannedCutoff", 1024))
    assert found == ["ecommerce:athenaBytesScannedCutoff: must be >= 10485760, got 1024"]


def test_prod_guard_rails() -> None:
    def unsafe(v: dict[str, Any]) -> None:
        v["ecommerce:storage"].update(forceDestroy=True, protect=False, versioning=False)

    found = problems("prod", unsafe)
    assert "ecommerce:storage.forceDestroy: must be false in prod" in found
    assert "ecommerce:storage.protect: must be true in prod" in found
    assert "ecommerce:storage.versioning: must be true in prod" in found


def test_prod_requires_kms_and_access_logs() -> None:
    def cheap(v: dict[str, Any]) -> None:
        v["ecommerce:storage"].update(kms=False, accessLogging=False)

    found = problems("prod", cheap)
    assert found == [
        "ecommerce:storage.kms: must be true in prod",
        "ecommerce:storage.accessLogging: must be true in prod",
    ]


def test_the_retired_catalog_group_is_named_with_what_to_do() -> None:
    found = problems(
        "dev", lambda v: v.__setitem__("ecommerce:catalog", {"partitionDiscovery": "crawler"})
    )
    assert len(found) == 1
    assert found[0].startswith("ecommerce:catalog: is retired: processed/ is an Iceberg table")
    assert "remove ecommerce:catalog" in found[0]


def test_orphans_must_be_at_least_a_day_old() -> None:
    """A data file of a commit still in flight looks like an orphan; it must survive."""
    found = problems(
        "dev", lambda v: v["ecommerce:maintenance"].__setitem__("orphanMinAgeHours", 23)
    )
    assert found == ["ecommerce:maintenance.orphanMinAgeHours: must be between 24 and 8760, got 23"]


def test_system_log_level_is_one_lambda_knows() -> None:
    found = problems("dev", lambda v: v.__setitem__("ecommerce:systemLogLevel", "WARNING"))
    assert found == [
        "ecommerce:systemLogLevel: must be one of ['DEBUG', 'INFO', 'WARN'], got 'WARNING'"
    ]
    values = stack_yaml("dev")
    values["ecommerce:logLevel"] = "WARNING"
    assert load("dev", values).application_log_level == "WARN"  # Lambda's spelling


def test_every_problem_is_reported_at_once() -> None:
    def many(v: dict[str, Any]) -> None:
        v["ecommerce:logRetentionDays"] = -1
        v["ecommerce:environment"] = "staging"
        v["ecommerce:transformer"]["memoryMb"] = 1

    found = problems("dev", many)
    assert len(found) == 3
    assert {p.split(": ")[0] for p in found} == {
        "ecommerce:environment",
        "ecommerce:logRetentionDays",
        "ecommerce:transformer.memoryMb",
    }


def test_engine_style_strings_parse_like_yaml_values() -> None:
    """Pulumi hands programs scalars as text ("7", "true") and structures as JSON."""
    raw = stack_yaml("prod")
    engine = {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in raw.items()
    }
    assert engine["ecommerce:logRetentionDays"] == "90"
    assert load_settings(engine.get, stack="prod") == load("prod")
