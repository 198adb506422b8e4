"""IAM and resource policy documents as plain dicts: least privilege, one place to audit."""

from __future__ import annotations

from typing import Any

Policy = dict[str, Any]

RAW = "raw/"
PROCESSED = "processed/"
QUARANTINE = "quarantine/"
STATE = "_state/"
ATHENA_RESULTS = "athena-results/"
ARTIFACTS = "artifacts/"


def document(*statements: dict[str, Any]) -> Policy:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def assume_role(service: str) -> Policy:
    """Trust policy letting one AWS service assume the role."""
    return document(
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    )


def _objects(bucket_arn: str, *prefixes: str) -> list[str]:
    return [f"{bucket_arn}/{prefix}*" for prefix in prefixes]


def _logs(log_group_arn: str) -> dict[str, Any]:
    # The log group exists before the function (created by the program), so no
    # logs:CreateLogGroup: the function can write to its own group only.
    return {
        "Sid": "OwnLogGroup",
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": [log_group_arn, f"{log_group_arn}:*"],
    }


def _dead_letters(queue_arn: str) -> dict[str, Any]:
    # Lambda sends failed async events to the on-failure destination as the function's role.
    return {
        "Sid": "OnFailureDestination",
        "Effect": "Allow",
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
    }


def _kms(key_arn: str, actions: list[str]) -> dict[str, Any]:
    return {"Sid": "DataKey", "Effect": "Allow", "Action": actions, "Resource": key_arn}


def generator_policy(
    *, bucket_arn: str, log_group_arn: str, queue_arn: str, kms_key_arn: str | None
) -> Policy:
    """The generator writes new batches to `raw/` and nothing else."""
    statements = [
        {
            "Sid": "WriteRaw",
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": _objects(bucket_arn, RAW),
        },
        _logs(log_group_arn),
        _dead_letters(queue_arn),
    ]
    if kms_key_arn:
        statements.append(_kms(kms_key_arn, ["kms:GenerateDataKey", "kms:Decrypt"]))
    return document(*statements)


def transformer_policy(
    *, bucket_arn: str, log_group_arn: str, queue_arn: str, kms_key_arn: str | None
) -> Policy:
    """Read `raw/`; write and replace `processed/`, `quarantine/`; keep manifests in `_state/`."""
    statements = [
        {
            # GetObjectVersion: with versioning on, the transformer reads the exact
            # version its outputs are named after.
            "Sid": "ReadRaw",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": _objects(bucket_arn, RAW),
        },
        {
            # Deletes remove outputs superseded when a raw object is overwritten.
            "Sid": "WriteOutputs",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:DeleteObject"],
            "Resource": _objects(bucket_arn, PROCESSED, QUARANTINE),
        },
        {
            "Sid": "Manifests",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": _objects(bucket_arn, STATE),
        },
        {
            # Without ListBucket S3 answers 403 instead of 404 for a missing key, and a
            # first-seen object's missing manifest would look like an access error. S3
            # makes that 404 decision without an s3:prefix in the request context, so a
            # prefix condition here would not bring the 404 back: bucket-wide listing it is.
            "Sid": "NotFoundIsNotForbidden",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
        },
        _logs(log_group_arn),
        _dead_letters(queue_arn),
    ]
    if kms_key_arn:
        statements.append(_kms(kms_key_arn, ["kms:GenerateDataKey", "kms:Decrypt"]))
    return document(*statements)


def crawler_policy(
    *,
    partition: str,
    region: str,
    account_id: str,
    database: str,
    table: str,
    bucket_arn: str,
    kms_key_arn: str | None,
) -> Policy:
    """A catalog-target crawler that only adds partitions to one existing table."""
    glue = f"arn:{partition}:glue:{region}:{account_id}"
    crawler_logs = f"arn:{partition}:logs:{region}:{account_id}:log-group:/aws-glue/crawlers:*"
    statements = [
        {
            "Sid": "OneTable",
            "Effect": "Allow",
            "Action": [
                "glue:GetDatabase",
                "glue:GetTable",
                # The crawler records its run on the table; the schema change policy
                # (LOG) keeps it from rewriting columns.
                "glue:UpdateTable",
                "glue:GetPartition",
                "glue:GetPartitions",
                "glue:BatchGetPartition",
                "glue:CreatePartition",
                "glue:BatchCreatePartition",
                "glue:UpdatePartition",
                "glue:BatchUpdatePartition",
            ],
            "Resource": [
                f"{glue}:catalog",
                f"{glue}:database/{database}",
                f"{glue}:table/{database}/{table}",
            ],
        },
        {
            "Sid": "ReadProcessed",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": _objects(bucket_arn, PROCESSED),
        },
        {
            "Sid": "ListProcessed",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": [PROCESSED, f"{PROCESSED}*"]}},
        },
        {
            "Sid": "CrawlerLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": crawler_logs,
        },
    ]
    if kms_key_arn:
        statements.append(_kms(kms_key_arn, ["kms:Decrypt"]))
    return document(*statements)


def tls_only_bucket_policy(bucket_arn: str) -> Policy:
    """Refuse every request to the bucket that does not arrive over TLS."""
    return document(
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )


def alerts_key_policy(*, partition: str, region: str, account_id: str, alarm_prefix: str) -> Policy:
    """Key policy for the alert topic's key: the account administers it, alarms may use it.

    CloudWatch cannot publish to a topic encrypted with the AWS-managed SNS key, so
    the topic needs a customer-managed key that grants the alarm service principal.
    """
    root = f"arn:{partition}:iam::{account_id}:root"
    return document(
        {
            # The default key policy: lets IAM policies in the account govern the key,
            # without which the key could become unmanageable.
            "Sid": "AccountAdministers",
            "Effect": "Allow",
            "Principal": {"AWS": root},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "AlarmsPublish",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": account_id},
                "ArnLike": {
                    "aws:SourceArn": f"arn:{partition}:cloudwatch:{region}:{account_id}"
                    f":alarm:{alarm_prefix}*"
                },
            },
        },
    )
