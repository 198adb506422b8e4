"""Security hardening per stack: every policy linted by parliament, and each guarantee proved."""

from __future__ import annotations

import json
from typing import Any

import pytest
from infra_view import (
    BUCKET,
    BUCKET_LOGGING,
    ENCRYPTION,
    KEY_POLICY,
    KMS_KEY,
    LIFECYCLE,
    ROLE,
    ROLE_POLICY,
    VERSIONING,
    WORKGROUP,
    View,
    as_list,
    statements,
)
from parliament import analyze_policy_string, enhance_finding

STACKS = ("dev", "prod")
FAILING = {"MEDIUM", "HIGH", "CRITICAL"}

# Findings of MEDIUM or above that are allowed, each with its reason:
# (issue, text the finding's detail contains, why it is not a problem).
ALLOWED = (
    (
        "MISMATCHED_TYPE",
        "s3:TlsVersion requires a value of type Numeric but given ['1.2']",
        "parliament's Numeric pattern is ^\\d+$; TLS versions are decimals, as AWS documents",
    ),
    (
        "UNKNOWN_CONDITION_FOR_ACTION",
        "Unknown condition s3:TlsVersion for action s3:",
        "a Deny on s3:* by TLS version; two actions in s3:* lack the key, so it cannot match them",
    ),
)


# -- parliament ------------------------------------------------------------------------


def policy_documents(view: View) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, where, document) for every policy document the stack produces.

    Trust policies name no Resource (the role is the resource); parliament would reject
    them as malformed identity policies, so they are linted with the role's ARN filled in.
    """
    kinds = {
        ROLE_POLICY: "identity",
        "aws:s3/bucketPolicy:BucketPolicy": "bucket",
        KEY_POLICY: "key",
        KMS_KEY: "key",
    }
    found = []
    for r in view.resources:
        if r["type"] == ROLE:
            trust = json.loads(r["inputs"]["assumeRolePolicy"])
            for st in statements(trust):
                st.setdefault("Resource", r["outputs"]["arn"])
            found.append(("trust", r["name"], trust))
        elif r["type"] in kinds and isinstance(r["inputs"].get("policy"), str):
            found.append((kinds[r["type"]], r["name"], json.loads(r["inputs"]["policy"])))
    return found


def lint(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(issue, severity, detail) of parliament's findings of MEDIUM or above, not allowed."""
    policy = analyze_policy_string(json.dumps(document), ignore_private_auditors=True)
    failing = []
    for finding in map(enhance_finding, policy.findings):  # sets severity from its config
        detail = str(finding.detail)
        allowed = any(issue == finding.issue and text in detail for issue, text, _ in ALLOWED)
        if finding.severity in FAILING and not allowed:
            failing.append((finding.issue, finding.severity, detail))
    return failing


def test_every_policy_document_passes_parliament(view: View) -> None:
    documents = policy_documents(view)
    kinds = [kind for kind, _, _ in documents]
    # 3 roles; data, results, artifacts buckets (+ access logs in prod); alerts key (+ data key).
    assert kinds.count("identity") == 3 and kinds.count("trust") == 3
    logs = 1 if view.cfg("ecommerce:storage.accessLogging") else 0
    assert kinds.count("bucket") == 3 + logs
    assert kinds.count("key") == (2 if view.cfg("ecommerce:storage.kms") else 1)
    problems = {where: found for _, where, document in documents if (found := lint(document))}
    assert problems == {}


def test_the_lint_fails_a_bad_policy() -> None:
    """The same check rejects a policy a reviewer would: unknown operator, mismatched ARN."""
    bad = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::bucket",  # a bucket, not an object
                "Condition": {"StringEqualz": {"aws:SourceAccount": "123456789012"}},
            }
        ],
    }
    issues = {issue for issue, _, _ in lint(bad)}
    assert {"RESOURCE_MISMATCH", "UNKNOWN_OPERATOR"} <= issues


# -- a small evaluator for the Deny statements, to prove what they refuse ---------------


def _matches(operator: str, actual: Any, wanted: Any) -> bool:
    wanted = as_list(wanted)
    if operator == "Null":
        return (actual is None) == (wanted[0] == "true")
    if actual is None:
        return operator.endswith("IfExists") or operator.startswith(("StringNot", "ArnNot"))
    if operator in ("StringEquals", "ArnEquals", "ArnLike"):
        return actual in wanted
    if operator == "StringNotEquals":
        return actual not in wanted
    if operator == "Bool":
        return str(actual).lower() == wanted[0]
    if operator == "NumericLessThan":
        return float(actual) < float(wanted[0])
    raise AssertionError(f"evaluator does not know {operator}")


def denied(policy: dict[str, Any], action: str, context: dict[str, Any]) -> list[str]:
    """Sids of the Deny statements that match a request for `action` with `context`."""
    hits = []
    for st in statements(policy):
        if st["Effect"] != "Deny":
            continue
        actions = as_list(st["Action"])
        if action not in actions and f"{action.split(':')[0]}:*" not in actions:
            continue
        condition = st.get("Condition", {})
        if all(
            _matches(operator, context.get(key), value)
            for operator, block in condition.items()
            for key, value in block.items()
        ):
            hits.append(st["Sid"])
    return hits


TLS = {"aws:SecureTransport": "true", "s3:TlsVersion": "1.3"}


def test_data_bucket_refuses_other_encryption_and_old_tls(view: View) -> None:
    policy = view.bucket_policy("-data")
    key_arn = view.arn_of(KMS_KEY, "-data-key") if view.cfg("ecommerce:storage.kms") else None
    put = "s3:PutObject"
    sse = "s3:x-amz-server-side-encryption"
    key = "s3:x-amz-server-side-encryption-aws-kms-key-id"
    # The pipeline's own writes (boto3, pyarrow, pyiceberg) send no header: allowed, and
    # S3's default encryption applies the stack's key (prod) or SSE-S3 (dev).
    assert denied(policy, put, TLS) == []
    assert denied(policy, "s3:GetObject", {**TLS, "s3:TlsVersion": "1.1"}) == ["DenyTlsBelow12"]
    assert denied(policy, "s3:GetObject", {"aws:SecureTransport": "false"}) == [
        "DenyInsecureTransport"
    ]
    sse_c = {**TLS, "s3:x-amz-server-side-encryption-customer-algorithm": "AES256"}
    assert denied(policy, put, sse_c) == ["DenyCustomerProvidedKeys"]
    other_key = "arn:aws:kms:eu-west-1:123456789012:key/someone-elses"
    if key_arn:
        assert denied(policy, put, {**TLS, sse: "aws:kms", key: key_arn}) == []
        assert denied(policy, put, {**TLS, sse: "aws:kms"}) == []  # default key
        assert denied(policy, put, {**TLS, sse: "AES256"}) == ["DenyOtherEncryption"]
        assert denied(policy, put, {**TLS, sse: "aws:kms", key: other_key}) == ["DenyOtherKmsKey"]
    else:
        assert denied(policy, put, {**TLS, sse: "AES256"}) == []
        assert denied(policy, put, {**TLS, sse: "aws:kms"}) == ["DenyOtherEncryption"]
        assert denied(policy, put, {**TLS, sse: "aws:kms", key: other_key}) == [
            "DenyOtherEncryption",
            "DenyKmsKeys",
        ]


# -- access logs -----------------------------------------------------------------------


def test_prod_logs_every_data_bucket_request_to_a_dedicated_bucket(prod: View) -> None:
    data, logs = prod.bucket("-data"), prod.bucket("-data-access-logs")
    logging = prod.inputs(BUCKET_LOGGING)
    assert logging["bucket"] == data["outputs"]["id"]
    assert logging["targetBucket"] == logs["outputs"]["id"]
    assert logging["targetPrefix"] == "s3-access/"
    (rule,) = prod.on_bucket(ENCRYPTION, logs)["rules"]
    # S3 server access logging delivers only to SSE-S3 buckets.
    assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    (expiry,) = prod.on_bucket(LIFECYCLE, logs)["rules"]
    assert expiry["expiration"]["days"] == prod.cfg("ecommerce:storage.accessLogExpiryDays")
    policy = prod.bucket_policy("-data-access-logs")
    by_sid = {st["Sid"]: st for st in statements(policy)}
    allow = by_sid["S3ServerAccessLogs"]
    assert allow["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert allow["Action"] == "s3:PutObject"
    assert allow["Resource"] == f"{logs['outputs']['arn']}/s3-access/*"
    assert allow["Condition"] == {
        "StringEquals": {"aws:SourceAccount": prod.record["account"]},
        "ArnLike": {"aws:SourceArn": data["outputs"]["arn"]},
    }
    assert [st for st in statements(policy) if st["Effect"] == "Allow"] == [allow]
    # A user or role of the account cannot write there; a service principal can.
    assert denied(policy, "s3:PutObject", {**TLS, "aws:PrincipalIsAWSService": "false"}) == [
        "DenyWritesByNonServices"
    ]
    assert denied(policy, "s3:PutObject", {**TLS, "aws:PrincipalIsAWSService": "true"}) == []
    assert not [r for r in prod.all(ROLE_POLICY) if logs["outputs"]["arn"] in r["inputs"]["policy"]]


def test_dev_keeps_access_logging_off(dev: View) -> None:
    assert dev.maybe(BUCKET_LOGGING) is None
    assert dev.maybe(BUCKET, "-data-access-logs") is None


# -- the data key ----------------------------------------------------------------------


def test_data_key_policy_lets_only_the_pipeline_roles_use_it_through_s3(prod: View) -> None:
    key = prod.one(KMS_KEY, "-data-key")
    key_policy = prod.one(KEY_POLICY, "-data-key-policy")
    assert key_policy["inputs"]["keyId"] == key["outputs"]["keyId"]
    policy = json.loads(key_policy["inputs"]["policy"])
    by_sid = {st["Sid"]: st for st in statements(policy)}
    assert set(by_sid) == {"AccountAdministers", "PipelineRolesViaS3", "DenyDirectUse"}
    assert by_sid["AccountAdministers"]["Principal"] == {
        "AWS": f"arn:aws:iam::{prod.record['account']}:root"
    }
    use = by_sid["PipelineRolesViaS3"]
    roles = prod.role_arns()
    assert set(roles) == {"generator", "transformer", "maintenance"}
    assert sorted(use["Principal"]["AWS"]) == sorted(roles.values())
    assert use["Condition"]["StringEquals"]["kms:ViaService"] == "s3.eu-west-1.amazonaws.com"
    assert set(use["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey"}
    # Direct use is refused to everyone; use through S3 is not.
    deny = by_sid["DenyDirectUse"]
    assert deny["Principal"] == "*"
    assert denied(policy, "kms:Decrypt", {}) == ["DenyDirectUse"]
    via_s3 = {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}
    assert denied(policy, "kms:Decrypt", via_s3) == []
    # The roles' own policies say the same.
    for role in roles:
        grants = [
            st for st in statements(prod.role_policy(role)) if "kms" in json.dumps(st["Action"])
        ]
        assert [st["Condition"] for st in grants] == [{"StringEquals": via_s3}]


def test_dev_has_no_data_key(dev: View) -> None:
    assert dev.maybe(KEY_POLICY) is None
    assert dev.maybe(KMS_KEY, "-data-key") is None


# -- Athena results --------------------------------------------------------------------


def test_results_have_their_own_bucket_out_of_the_pipeline_roles_reach(view: View) -> None:
    results = view.bucket("-data-athena-results")
    wg = view.inputs(WORKGROUP)["configuration"]["resultConfiguration"]
    assert wg["outputLocation"] == f"s3://{results['outputs']['id']}/"
    (rule,) = view.on_bucket(ENCRYPTION, results)["rules"]
    if view.cfg("ecommerce:storage.kms"):
        key_arn = view.arn_of(KMS_KEY, "-data-key")
        assert rule["applyServerSideEncryptionByDefault"] == {
            "sseAlgorithm": "aws:kms",
            "kmsMasterKeyId": key_arn,
        }
        assert wg["encryptionConfiguration"] == {
            "encryptionOption": "SSE_KMS",
            "kmsKeyArn": key_arn,
        }
    else:
        assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    expiry = [r for r in view.on_bucket(LIFECYCLE, results)["rules"] if "expiration" in r]
    assert [r["expiration"]["days"] for r in expiry] == [
        view.cfg("ecommerce:storage.athenaResultsExpiryDays")
    ]
    # No role is granted anything on it, and its policy denies them all explicitly.
    arn = results["outputs"]["arn"]
    assert not [r["name"] for r in view.all(ROLE_POLICY) if arn in r["inputs"]["policy"]]
    policy = view.bucket_policy("-data-athena-results")
    for role_arn in view.role_arns().values():
        context = {**TLS, "aws:PrincipalArn": role_arn}
        assert denied(policy, "s3:GetObject", context) == ["DenyPipelineRoles"]
    analyst = {**TLS, "aws:PrincipalArn": "arn:aws:iam::123456789012:role/analyst"}
    assert denied(policy, "s3:GetObject", analyst) == []


# -- trust policies --------------------------------------------------------------------


def test_every_trust_policy_is_pinned_to_this_account(view: View) -> None:
    roles = view.all(ROLE)
    assert len(roles) == 3
    for role in roles:
        (st,) = statements(json.loads(role["inputs"]["assumeRolePolicy"]))
        assert st["Principal"] == {"Service": "lambda.amazonaws.com"}
        assert st["Action"] == "sts:AssumeRole"
        assert st["Condition"]["StringEquals"] == {"aws:SourceAccount": view.record["account"]}


# -- artifacts -------------------------------------------------------------------------


def test_artifacts_bucket_is_versioned_and_no_role_can_write_it(view: View) -> None:
    artifacts = view.bucket("-data-artifacts")
    assert view.on_bucket(VERSIONING, artifacts)["versioningConfiguration"] == {"status": "Enabled"}
    assert view.on_bucket(ENCRYPTION, artifacts)["rules"]
    arn = artifacts["outputs"]["arn"]
    # No identity policy names it (S3 grants are all on the data bucket) ...
    data_arn = view.bucket("-data")["outputs"]["arn"]
    for r in view.all(ROLE_POLICY):
        assert arn not in r["inputs"]["policy"]
        for st in statements(json.loads(r["inputs"]["policy"])):
            if any(a.startswith("s3:") for a in as_list(st["Action"])):
                assert all(res.startswith(data_arn) for res in as_list(st["Resource"]))
    # ... and its policy refuses them writes even if one ever did.
    policy = view.bucket_policy("-data-artifacts")
    for role_arn in view.role_arns().values():
        context = {**TLS, "aws:PrincipalArn": role_arn}
        for action in ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"):
            assert denied(policy, action, context) == ["DenyWritesByPipelineRoles"]
    deployer = {**TLS, "aws:PrincipalArn": "arn:aws:iam::123456789012:role/deployer"}
    assert denied(policy, "s3:PutObject", deployer) == []


# -- listing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "prefixes"),
    [
        ("transformer", ["processed/*", "quarantine/*", "_state/*"]),
        ("maintenance", ["processed/*"]),
    ],
)
def test_list_bucket_carries_a_prefix_condition(view: View, role: str, prefixes: list[str]) -> None:
    (listing,) = [
        st for st in statements(view.role_policy(role)) if "s3:ListBucket" in as_list(st["Action"])
    ]
    assert listing["Resource"] == view.bucket_arn()
    # IfExists: S3's own 404-or-403 check for a missing key carries no prefix (see policies.py).
    assert listing["Condition"] == {"StringLikeIfExists": {"s3:prefix": prefixes}}


def test_generator_cannot_list_at_all(view: View) -> None:
    actions = {a for st in statements(view.role_policy("generator")) for a in as_list(st["Action"])}
    assert "s3:ListBucket" not in actions
