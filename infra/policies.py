"""IAM and resource policy documents as plain dicts: least privilege, one place to audit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Policy = dict[str, Any]

RAW = "raw/"
PROCESSED = "processed/"
QUARANTINE = "quarantine/"
STATE = "_state/"


def document(*statements: dict[str, Any]) -> Policy:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def assume_role(service: str, *, account_id: str, source_arn: str | None = None) -> Policy:
    """Trust policy letting one AWS service assume the role, on behalf of this account only.

    `aws:SourceAccount` stops the confused deputy: the service acting for another account
    cannot assume the role. `aws:SourceArn` narrows it to one resource where the service
    sets it on the role assumption (Scheduler, Glue); Lambda documents neither key for
    execution roles, so its trust carries the account condition, which Lambda does set.
    """
    condition: dict[str, Any] = {"StringEquals": {"aws:SourceAccount": account_id}}
    if source_arn is not None:
        condition["ArnLike"] = {"aws:SourceArn": source_arn}
    return document(
        {
            "Sid": "ServiceAssumesRole",
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sts:AssumeRole",
            "Condition": condition,
        }
    )


@dataclass(frozen=True)
class Grants:
    """The ARNs an identity policy is written against, resolved from outputs."""

    partition: str
    region: str
    account_id: str
    bucket_arn: str
    log_group_arn: str
    queue_arn: str
    kms_key_arn: str | None = None
    database: str = ""
    table: str = ""

    def objects(self, *prefixes: str) -> list[str]:
        return [f"{self.bucket_arn}/{prefix}*" for prefix in prefixes]

    def glue_table(self) -> list[str]:
        glue = f"arn:{self.partition}:glue:{self.region}:{self.account_id}"
        return [
            f"{glue}:catalog",
            f"{glue}:database/{self.database}",
            f"{glue}:table/{self.database}/{self.table}",
        ]


def _logs(g: Grants) -> dict[str, Any]:
    # The log group exists before the function (created by the program), so no
    # logs:CreateLogGroup: the function can write to its own group only.
    return {
        "Sid": "OwnLogGroup",
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": [g.log_group_arn, f"{g.log_group_arn}:*"],
    }


def _dead_letters(g: Grants) -> dict[str, Any]:
    # Lambda sends failed async events to the on-failure destination as the function's role.
    return {
        "Sid": "OnFailureDestination",
        "Effect": "Allow",
        "Action": "sqs:SendMessage",
        "Resource": g.queue_arn,
    }


def _kms(g: Grants, actions: list[str]) -> list[dict[str, Any]]:
    """The data key, usable only through S3 (the key policy says the same)."""
    if not g.kms_key_arn:
        return []
    return [
        {
            "Sid": "DataKeyViaS3",
            "Effect": "Allow",
            "Action": actions,
            "Resource": g.kms_key_arn,
            "Condition": {"StringEquals": {"kms:ViaService": f"s3.{g.region}.amazonaws.com"}},
        }
    ]


def _list(g: Grants, *prefixes: str) -> dict[str, Any]:
    """ListBucket limited to the prefixes a role works in.

    IfExists: S3 decides 404-versus-403 for a missing key by checking ListBucket with no
    `s3:prefix` in the request context. pyarrow (under pyiceberg) checks that a new metadata
    file does not exist before writing it, and treats 403 as an error, so a plain StringLike
    would break every Iceberg commit. Any listing that names a prefix must name one of these.
    """
    return {
        "Sid": "ListOwnPrefixes",
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": g.bucket_arn,
        "Condition": {
            "StringLikeIfExists": {"s3:prefix": [f"{p}*" for p in prefixes]},
        },
    }


def _iceberg_catalog(g: Grants) -> dict[str, Any]:
    """What pyiceberg's GlueCatalog calls: get_table on load, update_table on each commit."""
    return {
        "Sid": "IcebergTableCommits",
        "Effect": "Allow",
        "Action": ["glue:GetTable", "glue:UpdateTable"],
        "Resource": g.glue_table(),
    }


def _iceberg_files(g: Grants) -> dict[str, Any]:
    # Data and metadata files under processed/; deletes for compaction, snapshot expiry,
    # orphan removal and the metadata files Iceberg retires after each commit.
    return {
        "Sid": "IcebergFiles",
        "Effect": "Allow",
        "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
        "Resource": g.objects(PROCESSED),
    }


def generator_policy(g: Grants) -> Policy:
    """The generator writes new batches to `raw/` and nothing else."""
    statements = [
        {
            "Sid": "WriteRaw",
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": g.objects(RAW),
        },
        _logs(g),
        _dead_letters(g),
        *_kms(g, ["kms:GenerateDataKey", "kms:Decrypt"]),
    ]
    return document(*statements)


def transformer_policy(g: Grants) -> Policy:
    """Read `raw/`; commit to the Iceberg table; write `quarantine/`; keep state in `_state/`."""
    statements = [
        {
            # GetObjectVersion: with versioning on, the transformer reads the exact
            # version its outputs are named after.
            "Sid": "ReadRaw",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": g.objects(RAW),
        },
        _iceberg_files(g),
        {
            # Quarantine entries are rewritten per key; _state/ holds attempt counters.
            "Sid": "QuarantineAndState",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": g.objects(QUARANTINE, STATE),
        },
        _list(g, PROCESSED, QUARANTINE, STATE),
        _iceberg_catalog(g),
        _logs(g),
        _dead_letters(g),
        *_kms(g, ["kms:GenerateDataKey", "kms:Decrypt"]),
    ]
    return document(*statements)


def maintenance_policy(g: Grants) -> Policy:
    """Compact, expire snapshots and remove orphans in the table; nothing outside it."""
    statements = [
        _iceberg_files(g),
        _list(g, PROCESSED),
        _iceberg_catalog(g),
        _logs(g),
        _dead_letters(g),
        *_kms(g, ["kms:GenerateDataKey", "kms:Decrypt"]),
    ]
    return document(*statements)


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
