"""Resource policies as plain dicts: what the buckets and the data key allow, and deny."""

from __future__ import annotations

from typing import Any

from infra.policies import Policy, document

S3_LOGGING_SERVICE = "logging.s3.amazonaws.com"
ACCESS_LOG_PREFIX = "s3-access/"
MIN_TLS_VERSION = "1.2"
# Whoever writes through a key-naming header (Athena with SSE_KMS, a CLI user) must name
# the key by ARN: the condition compares the header's text, and S3 does not resolve aliases.
_SSE = "s3:x-amz-server-side-encryption"
_SSE_KEY = "s3:x-amz-server-side-encryption-aws-kms-key-id"
_SSE_C = "s3:x-amz-server-side-encryption-customer-algorithm"
# The key's cryptographic operations; administration stays with the account.
_KEY_USE = [
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
]


def _everything(bucket_arn: str) -> list[str]:
    return [bucket_arn, f"{bucket_arn}/*"]


def transport_statements(bucket_arn: str) -> list[dict[str, Any]]:
    """Refuse requests without TLS, and requests over TLS older than 1.2."""
    return [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": _everything(bucket_arn),
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "DenyTlsBelow12",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": _everything(bucket_arn),
            "Condition": {"NumericLessThan": {"s3:TlsVersion": MIN_TLS_VERSION}},
        },
    ]


def encryption_statements(bucket_arn: str, kms_key_arn: str | None) -> list[dict[str, Any]]:
    """Deny uploads that explicitly ask for encryption other than the bucket's default.

    A PUT without an encryption header is allowed on purpose: S3 encrypts it with the
    bucket's default (the stack's KMS key in prod, SSE-S3 in dev). The pipeline's own
    writes (boto3 puts, pyarrow/pyiceberg data and metadata files) send no header, so a
    rule that demanded the header would break them while adding no protection the
    default encryption does not already give. What a header can do is pick a weaker
    algorithm or a different key: those requests are refused.
    """
    objects = f"{bucket_arn}/*"
    wanted = "aws:kms" if kms_key_arn else "AES256"
    statements = [
        {
            "Sid": "DenyOtherEncryption",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": objects,
            "Condition": {"StringNotEquals": {_SSE: wanted}, "Null": {_SSE: "false"}},
        },
        {
            # Customer-provided keys: S3 would hold data it cannot decrypt for Athena.
            "Sid": "DenyCustomerProvidedKeys",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": objects,
            "Condition": {"Null": {_SSE_C: "false"}},
        },
    ]
    if kms_key_arn:
        statements.append(
            {
                "Sid": "DenyOtherKmsKey",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": objects,
                "Condition": {
                    "StringNotEquals": {_SSE_KEY: kms_key_arn},
                    "Null": {_SSE_KEY: "false"},
                },
            }
        )
    else:
        # SSE-S3 only: a KMS key id with any algorithm is refused too.
        statements.append(
            {
                "Sid": "DenyKmsKeys",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": objects,
                "Condition": {"Null": {_SSE_KEY: "false"}},
            }
        )
    return statements


def data_bucket_policy(bucket_arn: str, kms_key_arn: str | None) -> Policy:
    """TLS 1.2+ only, and no upload that names another encryption than the default."""
    return document(
        *transport_statements(bucket_arn), *encryption_statements(bucket_arn, kms_key_arn)
    )


def access_log_bucket_policy(
    *, log_bucket_arn: str, source_bucket_arn: str, account_id: str
) -> Policy:
    """Only S3's logging service, logging the data bucket of this account, writes here."""
    return document(
        {
            "Sid": "S3ServerAccessLogs",
            "Effect": "Allow",
            "Principal": {"Service": S3_LOGGING_SERVICE},
            "Action": "s3:PutObject",
            "Resource": f"{log_bucket_arn}/{ACCESS_LOG_PREFIX}*",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": account_id},
                "ArnLike": {"aws:SourceArn": source_bucket_arn},
            },
        },
        {
            # Users and roles of the account (admins included) cannot plant or overwrite
            # log records; only a service principal can, and only logging is allowed above.
            "Sid": "DenyWritesByNonServices",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": f"{log_bucket_arn}/*",
            "Condition": {"Bool": {"aws:PrincipalIsAWSService": "false"}},
        },
        *transport_statements(log_bucket_arn),
    )


def results_bucket_policy(
    *, bucket_arn: str, kms_key_arn: str | None, pipeline_role_arns: list[str]
) -> Policy:
    """Athena results: TLS only, default encryption, and out of the pipeline roles' reach.

    The roles hold no grant on this bucket anyway; the explicit deny keeps it that way
    if someone later widens a role's policy.
    """
    return document(
        *transport_statements(bucket_arn),
        *encryption_statements(bucket_arn, kms_key_arn),
        {
            "Sid": "DenyPipelineRoles",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": _everything(bucket_arn),
            "Condition": {"ArnEquals": {"aws:PrincipalArn": pipeline_role_arns}},
        },
    )


def artifacts_bucket_policy(*, bucket_arn: str, pipeline_role_arns: list[str]) -> Policy:
    """Layer and function code: the deployer writes; no pipeline role can change what runs."""
    return document(
        *transport_statements(bucket_arn),
        {
            "Sid": "DenyWritesByPipelineRoles",
            "Effect": "Deny",
            "Principal": "*",
            "Action": [
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:DeleteObjectVersion",
                "s3:PutBucketPolicy",
                "s3:PutLifecycleConfiguration",
            ],
            "Resource": _everything(bucket_arn),
            "Condition": {"ArnEquals": {"aws:PrincipalArn": pipeline_role_arns}},
        },
    )


def data_key_policy(
    *, partition: str, region: str, account_id: str, user_role_arns: list[str]
) -> Policy:
    """The data key: the account administers it; the pipeline's roles use it via S3 only.

    Nobody, the pipeline's roles included, can use the key directly (kms:Decrypt on a
    stolen object's data key, for instance): every cryptographic call must come through
    S3 in this region. Athena and Glue read and write the data through S3 as the caller,
    so analysts need the same via-S3 grant in their own IAM policy (see README).
    """
    via_s3 = f"s3.{region}.amazonaws.com"
    return document(
        {
            # The default key policy statement: IAM policies in the account govern the
            # key, so it can never become unmanageable.
            "Sid": "AccountAdministers",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "PipelineRolesViaS3",
            "Effect": "Allow",
            "Principal": {"AWS": user_role_arns},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": "*",
            "Condition": {
                "StringEquals": {"kms:ViaService": via_s3, "kms:CallerAccount": account_id}
            },
        },
        {
            "Sid": "DenyDirectUse",
            "Effect": "Deny",
            "Principal": "*",
            "Action": _KEY_USE,
            "Resource": "*",
            "Condition": {"StringNotEquals": {"kms:ViaService": via_s3}},
        },
    )
