"""One private bucket: public access blocked, ACLs off, encrypted, with lifecycle rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.config import Settings


@dataclass(frozen=True)
class PrivateBucket:
    """A bucket with its guards; its policy must wait for `public_access` (see `attach_policy`)."""

    bucket: aws.s3.Bucket
    public_access: aws.s3.BucketPublicAccessBlock
    lifecycle: aws.s3.BucketLifecycleConfiguration | None

    @property
    def arn(self) -> pulumi.Output[str]:
        return self.bucket.arn

    @property
    def name(self) -> pulumi.Output[str]:
        return self.bucket.bucket


def private_bucket(
    name: str,
    *,
    settings: Settings,
    parent: pulumi.Resource,
    kms_key_arn: pulumi.Input[str] | None,
    versioning: bool,
    lifecycle_rules: list[dict[str, Any]],
    keep: bool = False,
) -> PrivateBucket:
    """The bucket and the settings every bucket of the stack shares."""
    s = settings
    child = pulumi.ResourceOptions(parent=parent)
    bucket = aws.s3.Bucket(
        name,
        force_destroy=s.force_destroy,
        tags=s.tags,
        # In prod the data outlives a mistaken `pulumi destroy`.
        opts=pulumi.ResourceOptions(parent=parent, protect=keep, retain_on_delete=keep),
    )
    public_access = aws.s3.BucketPublicAccessBlock(
        f"{name}-public-access",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=child,
    )
    aws.s3.BucketOwnershipControls(
        f"{name}-ownership",
        bucket=bucket.id,
        rule={"object_ownership": "BucketOwnerEnforced"},  # ACLs off
        opts=child,
    )
    _encryption(name, bucket, kms_key_arn, child)
    versioned = None
    if versioning:
        versioned = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=child,
        )
    lifecycle = None
    if lifecycle_rules:
        lifecycle = aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=lifecycle_rules,
            # S3 evaluates noncurrent-version rules only once versioning is on.
            opts=pulumi.ResourceOptions(
                parent=parent, depends_on=[versioned] if versioned else None
            ),
        )
    return PrivateBucket(bucket=bucket, public_access=public_access, lifecycle=lifecycle)


def _encryption(
    name: str,
    bucket: aws.s3.Bucket,
    kms_key_arn: pulumi.Input[str] | None,
    child: pulumi.ResourceOptions,
) -> None:
    if kms_key_arn is not None:
        default: dict[str, Any] = {"sse_algorithm": "aws:kms", "kms_master_key_id": kms_key_arn}
    else:
        default = {"sse_algorithm": "AES256"}
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-encryption",
        bucket=bucket.id,
        # Bucket keys cut KMS requests (and cost) by orders of magnitude.
        rules=[{"apply_server_side_encryption_by_default": default, "bucket_key_enabled": True}],
        opts=child,
    )


def attach_policy(
    name: str, target: PrivateBucket, policy: pulumi.Input[str], parent: pulumi.Resource
) -> aws.s3.BucketPolicy:
    return aws.s3.BucketPolicy(
        f"{name}-policy",
        bucket=target.bucket.id,
        policy=policy,
        # Both write bucket-level settings; S3 rejects concurrent changes.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[target.public_access]),
    )


def expire(rule_id: str, prefix: str, days: int) -> dict[str, Any]:
    return {
        "id": rule_id,
        "status": "Enabled",
        "filter": {"prefix": prefix},
        "expiration": {"days": days},
    }


def abort_uploads() -> dict[str, Any]:
    return {
        "id": "abort-incomplete-uploads",
        "status": "Enabled",
        "filter": {"prefix": ""},
        "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
    }


def expire_noncurrent(days: int) -> dict[str, Any]:
    # With versioning an expiry only hides the object; this removes the old versions.
    return {
        "id": "expire-noncurrent-versions",
        "status": "Enabled",
        "filter": {"prefix": ""},
        "noncurrent_version_expiration": {"noncurrent_days": days},
        "expiration": {"expired_object_delete_marker": True},
    }
