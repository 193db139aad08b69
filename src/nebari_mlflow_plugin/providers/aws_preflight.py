"""AWS pre-flight: what the aws stage creates (S3 bucket and its policy, an IRSA role
trusting the cluster's OIDC provider, use of a KMS key), asked of AWS with the
credentials nebari deploys with (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY).

Permissions are answered by IAM's policy simulator for the caller
(`iam:SimulatePrincipalPolicy`: identity policies, boundaries, SCPs), existence by
read-only calls. Nothing is created. A check that cannot be asked says so and why;
it is never reported as passed. `_aws_client` is the only call that leaves the
machine (tests stub its clients with botocore's Stubber).
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any

from nebari_mlflow_plugin.providers.preflight import (
    FAILED,
    NOT_NEEDED,
    PASSED,
    TIMEOUT_SECONDS,
    CheckResult,
    PreflightSkipped,
    skipped,
)

CREDENTIALS = "AWS credentials"
BUCKET = "S3 bucket"
ROLE = "IAM role (IRSA)"
OIDC = "EKS OIDC provider (IRSA)"
KMS = "KMS key"

# What terraform/aws/storage.tf and identity.tf create, by the API actions behind them.
S3_ACTIONS = (
    "s3:CreateBucket",
    "s3:PutBucketPolicy",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketOwnershipControls",
    "s3:PutBucketVersioning",
    "s3:PutEncryptionConfiguration",
    "s3:PutBucketTagging",
)
# With mlflow.artifacts.noncurrent_days set, aws_s3_bucket_lifecycle_configuration: the
# AWS provider puts the rule (PutBucketLifecycleConfiguration), then reads it back until
# it is stable, and on every plan (GetBucketLifecycleConfiguration); removing the rule
# (DeleteBucketLifecycle) is authorized as s3:PutLifecycleConfiguration too.
LIFECYCLE_ACTIONS = ("s3:PutLifecycleConfiguration", "s3:GetLifecycleConfiguration")
IAM_ACTIONS = ("iam:CreateRole", "iam:PutRolePolicy", "iam:GetRole")
DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}


@functools.lru_cache(maxsize=4)
def _session(key_id: str, secret: str, token: str | None, region: str) -> Any:
    """One boto3 session per identity and region: loading botocore's data is the slow
    part, and validation runs on every nebari command."""
    import boto3

    return boto3.session.Session(
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
        region_name=region,
    )


def _aws_client(service: str, region: str) -> Any:
    """A boto3 client with nebari's credentials (never the instance metadata service:
    nebari itself deploys only with the environment's keys)."""
    env = os.environ
    if not (env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY")):
        raise PreflightSkipped("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set")
    from botocore.config import Config

    key_id, secret = env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    session = _session(key_id, secret, env.get("AWS_SESSION_TOKEN"), region)
    config = Config(connect_timeout=5, read_timeout=TIMEOUT_SECONDS, retries={"max_attempts": 2})
    return session.client(service, config=config)


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _why(exc: BaseException, operation: str) -> str:
    if isinstance(exc, PreflightSkipped):
        return str(exc)
    if _code(exc) in DENIED_CODES:
        return f"the caller may not call {operation}"
    first_line = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"AWS could not be asked ({operation}): {type(exc).__name__}: {first_line}"


def _aws_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (PreflightSkipped, BotoCoreError, ClientError)


def _principal(iam: Any, caller_arn: str) -> str | None:
    """The IAM ARN the simulator takes for the caller: users and roles as they are, an
    assumed-role session as its role (with its path); None for root and federated
    users, which the simulator cannot evaluate."""
    assumed = re.match(r"^arn:([\w-]+):sts::(\d+):assumed-role/([^/]+)/", caller_arn)
    if assumed:
        partition, account, role = assumed.groups()
        try:
            return str(iam.get_role(RoleName=role)["Role"]["Arn"])
        except _aws_errors():
            return f"arn:{partition}:iam::{account}:role/{role}"
    if re.match(r"^arn:[\w-]+:iam::\d+:(user|role)/", caller_arn):
        return caller_arn
    return None


def _denied(iam: Any, principal: str, actions: tuple[str, ...], resource: str) -> list[str]:
    denied = []
    pages = iam.get_paginator("simulate_principal_policy").paginate(
        PolicySourceArn=principal, ActionNames=list(actions), ResourceArns=[resource]
    )
    for page in pages:
        for result in page["EvaluationResults"]:
            if result["EvalDecision"] != "allowed":
                denied.append(f"{result['EvalActionName']} ({result['EvalDecision']})")
    return denied


def _permissions(
    iam: Any, principal: str | None, name: str, actions: tuple[str, ...], resource: str
) -> CheckResult | None:
    """The simulator's answer for `actions` on `resource`: a failure, a check that could
    not run, or None when every action is allowed."""
    if principal is None:
        return skipped(name, "the root user or a federated user cannot be simulated")
    try:
        denied = _denied(iam, principal, actions, resource)
    except _aws_errors() as exc:
        return skipped(name, _why(exc, "iam:SimulatePrincipalPolicy"))
    if denied:
        return CheckResult(
            name,
            FAILED,
            f"the identity deploying Nebari ({principal}) may not {', '.join(denied)} on "
            f"{resource}; nebari-mlflow-plugin creates it. Grant those actions, or set "
            "'mlflow: {enabled: false}'",
        )
    return None


def bucket_actions(lifecycle: bool) -> tuple[str, ...]:
    """What the bucket's resources need: the lifecycle rule's actions only with the rule."""
    return S3_ACTIONS + (LIFECYCLE_ACTIONS if lifecycle else ())


def _bucket(
    s3: Any, iam: Any, principal: str | None, bucket: str, partition: str, lifecycle: bool
) -> CheckResult:
    arn = f"arn:{partition}:s3:::{bucket}"
    try:
        s3.head_bucket(Bucket=bucket)
        state = "exists and is readable by the caller (adopted)"
    except _aws_errors() as exc:
        if _code(exc) in {"404", "NoSuchBucket", "NotFound"}:
            state = "is free"
        elif _code(exc) in {"403", *DENIED_CODES}:
            return CheckResult(
                BUCKET,
                FAILED,
                f"S3 bucket {bucket!r} already exists and the caller may not read it (another "
                "AWS account owns the name, or a policy denies it): set mlflow.aws.bucket_name "
                "to a free name",
            )
        else:
            return skipped(BUCKET, _why(exc, "s3:HeadBucket"))
    refused = _permissions(iam, principal, BUCKET, bucket_actions(lifecycle), arn)
    if refused:
        return refused
    rule = " with its noncurrent-version rule" if lifecycle else ""
    return CheckResult(
        BUCKET, PASSED, f"{bucket} {state}; the caller may create and configure it{rule}"
    )


def _oidc(eks: Any, iam: Any, cluster: str, account: str, partition: str) -> CheckResult:
    try:
        issuer = eks.describe_cluster(name=cluster)["cluster"]["identity"]["oidc"]["issuer"]
    except _aws_errors() as exc:
        if _code(exc) == "ResourceNotFoundException":
            return skipped(
                OIDC,
                f"EKS cluster {cluster!r} does not exist yet; Nebari's stage 02 creates it "
                "with its IAM OIDC provider",
            )
        return skipped(OIDC, _why(exc, "eks:DescribeCluster"))
    host = issuer.removeprefix("https://")
    arn = f"arn:{partition}:iam::{account}:oidc-provider/{host}"
    try:
        iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    except _aws_errors() as exc:
        if _code(exc) == "NoSuchEntity":
            return CheckResult(
                OIDC,
                FAILED,
                f"EKS cluster {cluster!r} has no IAM OIDC provider for its issuer {issuer}; the "
                "MLflow role trusts it (IRSA) and the server could not reach S3. Create it "
                f"(eksctl utils associate-iam-oidc-provider --cluster {cluster} --approve)",
            )
        return skipped(OIDC, _why(exc, "iam:GetOpenIDConnectProvider"))
    return CheckResult(OIDC, PASSED, f"{arn} exists")


def _kms(kms: Any, key_arn: str | None, region: str, account: str) -> CheckResult:
    if not key_arn:
        return CheckResult(KMS, NOT_NEEDED, "mlflow.aws.kms_key_arn is not set (SSE-S3)")
    key_region, key_account = key_arn.split(":")[3:5]
    if key_region != region:
        return CheckResult(
            KMS,
            FAILED,
            f"KMS key {key_arn} is in {key_region}; S3 encrypts only with keys of the "
            f"bucket's region {region}: name a key in {region}",
        )
    try:
        meta = kms.describe_key(KeyId=key_arn)["KeyMetadata"]
    except _aws_errors() as exc:
        if _code(exc) == "NotFoundException":
            return CheckResult(KMS, FAILED, f"KMS key {key_arn} does not exist")
        return skipped(KMS, _why(exc, "kms:DescribeKey"))
    found = (meta.get("KeyState"), meta.get("KeyUsage"), meta.get("KeySpec"))
    if found != ("Enabled", "ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT"):
        return CheckResult(
            KMS,
            FAILED,
            f"KMS key {key_arn} is {'/'.join(str(f) for f in found)}; S3 default encryption "
            "needs an Enabled, ENCRYPT_DECRYPT, SYMMETRIC_DEFAULT key",
        )
    policy = (
        f"its key policy must let account {account}'s IAM policies grant its use "
        "(the default key policy does; not checked)"
        if key_account == account
        else f"it belongs to account {key_account}: its key policy must allow the MLflow role "
        "(not checked)"
    )
    return CheckResult(KMS, PASSED, f"{key_arn} is enabled and symmetric; {policy}")


def aws_checks(
    region: str,
    bucket: str,
    role: str,
    cluster: str,
    kms_key_arn: str | None,
    lifecycle: bool = True,
) -> list[CheckResult]:
    """`lifecycle`: the noncurrent-version rule is created (noncurrent_days is set)."""
    try:
        sts = _aws_client("sts", region)
        caller_arn = str(sts.get_caller_identity()["Arn"])
    except _aws_errors() as exc:
        why = _why(exc, "sts:GetCallerIdentity")
        later = [BUCKET, ROLE, OIDC] + ([KMS] if kms_key_arn else [])
        return [skipped(CREDENTIALS, why)] + [skipped(n, "no AWS identity") for n in later]
    partition, account = caller_arn.split(":")[1], caller_arn.split(":")[4]
    results = [CheckResult(CREDENTIALS, PASSED, caller_arn)]
    iam = _aws_client("iam", region)
    principal = _principal(iam, caller_arn)
    s3 = _aws_client("s3", region)
    results.append(_bucket(s3, iam, principal, bucket, partition, lifecycle))
    role_arn = f"arn:{partition}:iam::{account}:role/{role}"
    results.append(
        _permissions(iam, principal, ROLE, IAM_ACTIONS, role_arn)
        or CheckResult(ROLE, PASSED, f"the caller may create {role_arn} and its policy")
    )
    results.append(_oidc(_aws_client("eks", region), iam, cluster, account, partition))
    results.append(_kms(_aws_client("kms", region), kms_key_arn, region, account))
    return results
