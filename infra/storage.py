"""Storage tier: the data bucket, its encryption key, and the rules that guard both."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from infra import policies
from infra.config import Settings

PREFIXES: dict[str, str] = {
    "raw": policies.RAW,
    "processed": policies.PROCESSED,
    "quarantine": policies.QUARANTINE,
    "athenaResults": policies.ATHENA_RESULTS,
    "artifacts": policies.ARTIFACTS,
}


class Storage(pulumi.ComponentResource):
    """One bucket per stack; prefixes separate raw input, outputs and query results."""

    bucket: aws.s3.Bucket
    kms_key: aws.kms.Key | None

    def __init__(
        self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("ecommerce:infra:Storage", name, None, opts)
        s = settings
        child = pulumi.ResourceOptions(parent=self)
        # In prod the bucket, its key and the catalog outlive a mistaken `pulumi destroy`.
        keep = pulumi.ResourceOptions(parent=self, protect=s.protect, retain_on_delete=s.protect)

        self.kms_key = None
        if s.kms:
            self.kms_key = aws.kms.Key(
                f"{name}-key",
                description=f"Data at rest in the {s.name_prefix} pipeline bucket",
                enable_key_rotation=True,
                deletion_window_in_days=30,
                tags=s.tags,
                opts=keep,
            )
            aws.kms.Alias(
                f"{name}-key-alias",
                name=f"alias/{s.name_prefix}-data",
                target_key_id=self.kms_key.key_id,
                opts=child,
            )

        self.bucket = aws.s3.Bucket(
            name,
            force_destroy=s.force_destroy,
            tags=s.tags,
            opts=keep,
        )
        bucket_id = self.bucket.id

        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket_id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket_id,
            rule={"object_ownership": "BucketOwnerEnforced"},  # ACLs off
            opts=child,
        )

        if self.kms_key is not None:
            default = {"sse_algorithm": "aws:kms", "kms_master_key_id": self.kms_key.arn}
        else:
            default = {"sse_algorithm": "AES256"}
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket_id,
            # Bucket keys cut KMS requests (and cost) by orders of magnitude.
            rules=[
                {"apply_server_side_encryption_by_default": default, "bucket_key_enabled": True}
            ],
            opts=child,
        )

        versioning = None
        if s.versioning:
            versioning = aws.s3.BucketVersioning(
                f"{name}-versioning",
                bucket=bucket_id,
                versioning_configuration={"status": "Enabled"},
                opts=child,
            )

        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket_id,
            rules=lifecycle_rules(s),
            # S3 evaluates noncurrent-version rules only once versioning is on.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[versioning] if versioning else None
            ),
        )

        aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=bucket_id,
            policy=self.bucket.arn.apply(
                lambda arn: json.dumps(policies.tls_only_bucket_policy(arn))
            ),
            # Both write bucket-level settings; S3 rejects concurrent changes.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access]),
        )

        self.bucket_name = self.bucket.bucket
        self.bucket_arn = self.bucket.arn
        self.kms_key_arn = self.kms_key.arn if self.kms_key is not None else None
        self.prefixes = {
            label: pulumi.Output.concat("s3://", self.bucket.bucket, "/", prefix)
            for label, prefix in PREFIXES.items()
        }
        self.register_outputs(
            {"bucket": self.bucket_name, "bucketArn": self.bucket_arn, "prefixes": self.prefixes}
        )


def lifecycle_rules(s: Settings) -> list[dict]:
    """Expire raw input and query results; keep quarantine for review; `processed/` stays."""

    def expire(rule_id: str, prefix: str, days: int) -> dict:
        return {
            "id": rule_id,
            "status": "Enabled",
            "filter": {"prefix": prefix},
            "expiration": {"days": days},
        }

    rules = [
        expire("expire-raw", policies.RAW, s.raw_expiry_days),
        expire("expire-athena-results", policies.ATHENA_RESULTS, s.athena_results_expiry_days),
        expire("expire-quarantine", policies.QUARANTINE, s.quarantine_expiry_days),
        {
            "id": "abort-incomplete-uploads",
            "status": "Enabled",
            "filter": {"prefix": ""},
            "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
        },
    ]
    if s.versioning:
        # With versioning an expiry only hides the object; this removes the old versions.
        rules.append(
            {
                "id": "expire-noncurrent-versions",
                "status": "Enabled",
                "filter": {"prefix": ""},
                "noncurrent_version_expiration": {
                    "noncurrent_days": s.noncurrent_version_expiry_days
                },
                "expiration": {"expired_object_delete_marker": True},
            }
        )
    return rules
