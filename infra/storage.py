"""Storage tier: the data bucket, its key, and the log, Athena results and artifacts buckets."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from infra import policies, resource_policies
from infra.buckets import (
    PrivateBucket,
    abort_uploads,
    attach_policy,
    expire,
    expire_noncurrent,
    private_bucket,
)
from infra.config import Settings

PREFIXES: dict[str, str] = {
    "raw": policies.RAW,
    "processed": policies.PROCESSED,
    "quarantine": policies.QUARANTINE,
}


class Storage(pulumi.ComponentResource):
    """The data bucket holds only pipeline data; logs, query results and code live apart."""

    kms_key: aws.kms.Key | None
    access_logs: PrivateBucket | None

    def __init__(
        self,
        name: str,
        settings: Settings,
        *,
        account_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("ecommerce:infra:Storage", name, None, opts)
        s = settings
        self.kms_key = self._data_key(name, s) if s.kms else None
        self.kms_key_arn = self.kms_key.arn if self.kms_key is not None else None

        self.data = private_bucket(
            name,
            settings=s,
            parent=self,
            kms_key_arn=self.kms_key_arn,
            versioning=s.versioning,
            lifecycle_rules=data_lifecycle_rules(s),
            keep=s.protect,
        )
        key_arn = self.kms_key_arn if self.kms_key_arn is not None else ""
        attach_policy(
            name,
            self.data,
            pulumi.Output.all(self.data.arn, key_arn).apply(
                lambda v: json.dumps(resource_policies.data_bucket_policy(v[0], v[1] or None))
            ),
            self,
        )
        self.access_logs = None
        if s.access_logging:
            self.access_logs = self._access_logs(name, s, account_id)

        self.athena_results, self.artifacts = self._side_buckets(name, s)

        self.bucket = self.data.bucket
        self.bucket_name = self.data.name
        self.bucket_arn = self.data.arn
        self.prefixes = {
            label: pulumi.Output.concat("s3://", self.bucket_name, "/", prefix)
            for label, prefix in PREFIXES.items()
        }
        self.register_outputs(
            {
                "bucket": self.bucket_name,
                "bucketArn": self.bucket_arn,
                "prefixes": self.prefixes,
                "athenaResultsBucket": self.athena_results.name,
                "artifactsBucket": self.artifacts.name,
            }
        )

    def _side_buckets(self, name: str, s: Settings) -> tuple[PrivateBucket, PrivateBucket]:
        # Query results may hold customer rows: a bucket of their own, expiring quickly.
        results = private_bucket(
            f"{name}-athena-results",
            settings=s,
            parent=self,
            kms_key_arn=self.kms_key_arn,
            versioning=False,
            lifecycle_rules=[
                expire("expire-results", "", s.athena_results_expiry_days),
                abort_uploads(),
            ],
        )
        # What Lambda runs: versioned, so a bad upload can be traced and rolled back. SSE-S3:
        # Lambda fetches the code with the deployer's credentials, which need no key grant.
        artifacts = private_bucket(
            f"{name}-artifacts",
            settings=s,
            parent=self,
            kms_key_arn=None,
            versioning=True,
            lifecycle_rules=[expire_noncurrent(s.noncurrent_version_expiry_days), abort_uploads()],
        )

        return results, artifacts

    def _data_key(self, name: str, s: Settings) -> aws.kms.Key:
        # Its key policy names the roles that use it, so it is set once they exist
        # (infra/guards.py); until then the key has KMS's default policy (root only).
        key = aws.kms.Key(
            f"{name}-key",
            description=f"Data at rest in the {s.name_prefix} pipeline buckets",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=s.tags,
            opts=pulumi.ResourceOptions(parent=self, protect=s.protect, retain_on_delete=s.protect),
        )
        aws.kms.Alias(
            f"{name}-key-alias",
            name=f"alias/{s.name_prefix}-data",
            target_key_id=key.key_id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return key

    def _access_logs(self, name: str, s: Settings, account_id: pulumi.Input[str]) -> PrivateBucket:
        """Server access logs of the data bucket, in a bucket only S3's logger writes to."""
        logs = private_bucket(
            f"{name}-access-logs",
            settings=s,
            parent=self,
            # S3 server access logging delivers only to SSE-S3 buckets, never SSE-KMS.
            kms_key_arn=None,
            versioning=False,
            lifecycle_rules=[expire("expire-access-logs", "", s.access_log_expiry_days)],
            keep=s.protect,
        )
        policy = attach_policy(
            f"{name}-access-logs",
            logs,
            pulumi.Output.all(logs.arn, self.data.arn, account_id).apply(
                lambda v: json.dumps(
                    resource_policies.access_log_bucket_policy(
                        log_bucket_arn=v[0], source_bucket_arn=v[1], account_id=v[2]
                    )
                )
            ),
            self,
        )
        aws.s3.BucketLogging(
            f"{name}-access-logging",
            bucket=self.data.bucket.id,
            target_bucket=logs.bucket.id,
            target_prefix=resource_policies.ACCESS_LOG_PREFIX,
            # Date-partitioned keys: Athena can project them, and listing one day is cheap.
            target_object_key_format={"partitioned_prefix": {"partition_date_source": "EventTime"}},
            # The logging service needs the bucket policy's grant before the first delivery.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        return logs


def data_lifecycle_rules(s: Settings) -> list[dict]:
    """Expire raw input and quarantine; `processed/` is the Iceberg table: maintenance's job."""
    rules = [
        expire("expire-raw", policies.RAW, s.raw_expiry_days),
        expire("expire-quarantine", policies.QUARANTINE, s.quarantine_expiry_days),
        abort_uploads(),
    ]
    if s.versioning:
        rules.append(expire_noncurrent(s.noncurrent_version_expiry_days))
    return rules
