"""Guards tier: resource policies that name the pipeline's roles, set once the roles exist."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from infra import resource_policies
from infra.buckets import PrivateBucket, attach_policy
from infra.config import Settings


class Guards(pulumi.ComponentResource):
    """The data key's policy and the results and artifacts buckets' policies.

    KMS refuses a key policy naming a role that does not exist yet, and the roles'
    own policies name the key, so the key policy is a separate resource set after both.
    """

    def __init__(
        self,
        name: str,
        *,
        settings: Settings,
        partition: pulumi.Input[str],
        account_id: pulumi.Input[str],
        kms_key: aws.kms.Key | None,
        athena_results: PrivateBucket,
        artifacts: PrivateBucket,
        role_arns: list[pulumi.Output[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("ecommerce:infra:Guards", name, None, opts)
        s = settings
        roles = pulumi.Output.all(*role_arns)
        self.key_policy = None
        if kms_key is not None:
            self.key_policy = aws.kms.KeyPolicy(
                f"{name}-data-key-policy",
                key_id=kms_key.key_id,
                policy=pulumi.Output.all(partition, account_id, roles).apply(
                    lambda v: json.dumps(
                        resource_policies.data_key_policy(
                            partition=v[0], region=s.region, account_id=v[1], user_role_arns=v[2]
                        )
                    )
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
        key_arn = kms_key.arn if kms_key is not None else ""
        attach_policy(
            f"{name}-athena-results",
            athena_results,
            pulumi.Output.all(athena_results.arn, key_arn, roles).apply(
                lambda v: json.dumps(
                    resource_policies.results_bucket_policy(
                        bucket_arn=v[0], kms_key_arn=v[1] or None, pipeline_role_arns=v[2]
                    )
                )
            ),
            self,
        )
        attach_policy(
            f"{name}-artifacts",
            artifacts,
            pulumi.Output.all(artifacts.arn, roles).apply(
                lambda v: json.dumps(
                    resource_policies.artifacts_bucket_policy(
                        bucket_arn=v[0], pipeline_role_arns=v[1]
                    )
                )
            ),
            self,
        )
        self.register_outputs({})
