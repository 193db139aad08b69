"""AWS pre-flight: the identity nebari deploys with is asked whether it may create the
bucket, its policy, the IRSA role; the cluster's OIDC provider and the KMS key are
looked up. Only the calls that leave the machine are replaced: real boto3 clients,
answered by botocore's Stubber (which also checks what each call asked). A check that
could not run is never reported as passed."""

from __future__ import annotations

import boto3
import pydantic
import pytest
import yaml
from _nebari.cli import create_cli
from botocore.stub import Stubber
from support import nebari as nb
from typer.testing import CliRunner

from nebari_mlflow_plugin.config.cloud_names import aws_names
from nebari_mlflow_plugin.providers import aws_preflight, preflight, provider_for

ACCOUNT = "123456789012"
USER = f"arn:aws:iam::{ACCOUNT}:user/deployer"
NAMES = aws_names("demo", "dev", "us-west-2")
BUCKET_ARN = f"arn:aws:s3:::{NAMES.bucket}"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{NAMES.role}"
CLUSTER = "demo-dev"  # nebari's EKS name: <project>-<namespace>
ISSUER = "https://oidc.eks.us-west-2.amazonaws.com/id/ABC123"
OIDC_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/ABC123"
KEY = f"arn:aws:kms:us-west-2:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
# The default config keeps noncurrent versions 30 days: the bucket has a lifecycle rule.
BUCKET_ACTIONS = aws_preflight.S3_ACTIONS + aws_preflight.LIFECYCLE_ACTIONS


@pytest.fixture(autouse=True)
def _credentials(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)
    monkeypatch.delenv(preflight.SKIP_ENV, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")


class FakeAws:
    """Real clients whose requests never leave: each answer is queued in order."""

    def __init__(self) -> None:
        session = boto3.session.Session(
            aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x", region_name="us-west-2"
        )
        self.clients = {s: session.client(s) for s in ("sts", "iam", "s3", "eks", "kms")}
        self.stubs = {s: Stubber(c) for s, c in self.clients.items()}
        for stub in self.stubs.values():
            stub.activate()

    def client(self, service: str, region: str):
        assert region == "us-west-2"
        return self.clients[service]

    def ok(self, service, method, response=None, params=None):
        self.stubs[service].add_response(method, response or {}, params)

    def error(self, service, method, code, status=400):
        self.stubs[service].add_client_error(method, code, http_status_code=status)

    def simulation(self, resource, actions, denied=(), error=None, principal=USER):
        params = {
            "PolicySourceArn": principal, "ActionNames": list(actions), "ResourceArns": [resource]
        }  # fmt: skip
        if error:
            self.error("iam", "simulate_principal_policy", error, 403)
            return
        results = [
            {"EvalActionName": a, "EvalDecision": "implicitDeny" if a in denied else "allowed"}
            for a in actions
        ]
        self.ok("iam", "simulate_principal_policy", {"EvaluationResults": results}, params)

    def everything_allowed(self, kms=False, **changes):
        """The answers of an account where the deploy would succeed; `changes` replace one."""
        self.ok("sts", "get_caller_identity", {"Arn": USER, "Account": ACCOUNT, "UserId": "AID"})
        changes.get("bucket", lambda: self.error("s3", "head_bucket", "404", 404))()
        changes.get("s3", lambda: self.simulation(BUCKET_ARN, BUCKET_ACTIONS))()
        changes.get("iam", lambda: self.simulation(ROLE_ARN, aws_preflight.IAM_ACTIONS))()
        changes.get("cluster", self.cluster)()
        if kms:
            changes.get("key", lambda: self.key("Enabled"))()

    def cluster(self):
        self.ok(
            "eks", "describe_cluster",
            {"cluster": {"name": CLUSTER, "identity": {"oidc": {"issuer": ISSUER}}}},
            {"name": CLUSTER},
        )  # fmt: skip
        self.ok(
            "iam", "get_open_id_connect_provider",
            {"Url": ISSUER.removeprefix("https://")}, {"OpenIDConnectProviderArn": OIDC_ARN},
        )  # fmt: skip

    def key(self, state):
        meta = {"KeyId": "k", "Arn": KEY, "KeyState": state, "KeyUsage": "ENCRYPT_DECRYPT",
                "KeySpec": "SYMMETRIC_DEFAULT"}  # fmt: skip
        self.ok("kms", "describe_key", {"KeyMetadata": meta}, {"KeyId": KEY})

    def all_answered(self):
        for stub in self.stubs.values():
            stub.assert_no_pending_responses()


@pytest.fixture
def aws(monkeypatch):
    fake = FakeAws()
    monkeypatch.setattr(aws_preflight, "_aws_client", fake.client)
    return fake


def config(mlflow=None):
    return nb.validate(nb.config_dict("aws", mlflow or {}))


def checks(mlflow=None):
    nb_config = nb.config_dict("aws", mlflow or {})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(preflight.SKIP_ENV, "1")  # validation itself would ask first
        loaded = nb.validate(nb_config)
    return {r.name: r for r in provider_for("aws").preflight_checks(loaded)}


def cli(tmp_path, mlflow=None):
    path = tmp_path / "nebari-config.yaml"
    path.write_text(yaml.safe_dump(nb.config_dict("aws", mlflow or {})))
    result = CliRunner().invoke(
        create_cli(), ["mlflow", "preflight", "-c", str(path)], env={"COLUMNS": "400"},
        catch_exceptions=False,
    )  # fmt: skip
    return result.exit_code, result.output


def test_everything_granted_passes_and_asks_for_what_the_stage_creates(aws, tmp_path):
    aws.everything_allowed(kms=True)
    code, output = cli(tmp_path, {"aws": {"kms_key_arn": KEY}})
    assert code == 0, output
    aws.all_answered()  # the simulations named the bucket's and the role's ARNs (params)
    for name in ("AWS credentials", "S3 bucket", "IAM role (IRSA)", "EKS OIDC provider", "KMS"):
        (row,) = [line for line in output.splitlines() if name in line]
        assert "passed" in row, row
    assert "pre-flight passed for provider aws" in output


def test_a_denied_bucket_policy_fails_validation(aws):
    aws.everything_allowed(s3=lambda: aws.simulation(
        BUCKET_ARN, BUCKET_ACTIONS, denied={"s3:PutBucketPolicy"}
    ))  # fmt: skip
    denied = r"may not s3:PutBucketPolicy \(implicitDeny\)"
    with pytest.raises(pydantic.ValidationError, match=denied):
        config()


def test_the_lifecycle_rule_is_asked_for_only_when_the_config_creates_it(aws):
    """noncurrent_days adds aws_s3_bucket_lifecycle_configuration: the AWS provider puts
    the rule and reads it back, so a caller denied either fails before the deploy; with
    noncurrent_days null no rule is created and neither is asked (the Stubber checks the
    simulated action list)."""
    aws.everything_allowed(s3=lambda: aws.simulation(
        BUCKET_ARN, BUCKET_ACTIONS, denied={"s3:PutLifecycleConfiguration"}
    ))  # fmt: skip
    result = checks()["S3 bucket"]
    assert result.status == "failed", result
    assert "s3:PutLifecycleConfiguration (implicitDeny)" in result.detail

    aws.everything_allowed(s3=lambda: aws.simulation(BUCKET_ARN, aws_preflight.S3_ACTIONS))
    result = checks({"artifacts": {"noncurrent_days": None}})["S3 bucket"]
    assert result.status == "passed" and "noncurrent" not in result.detail
    aws.all_answered()


def test_a_denied_role_creation_is_reported_with_the_role(aws):
    aws.everything_allowed(iam=lambda: aws.simulation(
        ROLE_ARN, aws_preflight.IAM_ACTIONS, denied={"iam:CreateRole"}
    ))  # fmt: skip
    result = checks()["IAM role (IRSA)"]
    assert result.status == "failed" and "iam:CreateRole" in result.detail
    assert ROLE_ARN in result.detail


def test_a_caller_that_may_not_simulate_is_not_checked_not_passed(aws, tmp_path):
    aws.everything_allowed(
        s3=lambda: aws.simulation(BUCKET_ARN, (), error="AccessDenied"),
        iam=lambda: aws.simulation(ROLE_ARN, (), error="AccessDenied"),
    )
    code, output = cli(tmp_path)
    assert code == 2, output
    (row,) = [line for line in output.splitlines() if "S3 bucket" in line]
    assert "not checked" in row and "may not call iam:SimulatePrincipalPolicy" in row
    assert "pre-flight incomplete for provider aws: 2 check(s) not run" in output
    assert "pre-flight passed" not in output


def test_a_bucket_name_owned_elsewhere_fails(aws):
    aws.everything_allowed(bucket=lambda: aws.error("s3", "head_bucket", "403", 403))
    result = checks()["S3 bucket"]
    assert result.status == "failed" and "mlflow.aws.bucket_name" in result.detail


def test_a_cluster_without_oidc_provider_fails_and_a_missing_cluster_is_not_checked(aws):
    def no_provider():
        aws.ok("eks", "describe_cluster",
               {"cluster": {"identity": {"oidc": {"issuer": ISSUER}}}})  # fmt: skip
        aws.error("iam", "get_open_id_connect_provider", "NoSuchEntity", 404)

    aws.everything_allowed(cluster=no_provider)
    result = checks()["EKS OIDC provider (IRSA)"]
    assert result.status == "failed" and "associate-iam-oidc-provider" in result.detail

    aws.everything_allowed(
        cluster=lambda: aws.error("eks", "describe_cluster", "ResourceNotFoundException", 404)
    )
    result = checks()["EKS OIDC provider (IRSA)"]
    assert result.status == "not checked" and "does not exist yet" in result.detail


def test_kms_key_must_be_enabled_and_in_the_bucket_region(aws):
    aws.everything_allowed(kms=True, key=lambda: aws.key("Disabled"))
    result = checks({"aws": {"kms_key_arn": KEY}})["KMS key"]
    assert result.status == "failed" and "Disabled" in result.detail

    other_region = KEY.replace("us-west-2", "eu-west-1")
    aws.everything_allowed()  # no describe_key: the ARN already says it cannot work
    result = checks({"aws": {"kms_key_arn": other_region}})["KMS key"]
    assert result.status == "failed" and "eu-west-1" in result.detail
    aws.all_answered()


def test_an_assumed_role_is_simulated_as_its_role_with_its_path(aws):
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy/ci-run-7"
    role = f"arn:aws:iam::{ACCOUNT}:role/ci/deploy"
    aws.ok("sts", "get_caller_identity", {"Arn": session, "Account": ACCOUNT, "UserId": "A"})
    aws.ok("iam", "get_role", {"Role": {"Arn": role, "RoleName": "deploy", "Path": "/ci/",
           "RoleId": "AROAEXAMPLE0000000000", "CreateDate": "2026-01-01T00:00:00Z"}},
           {"RoleName": "deploy"})  # fmt: skip
    aws.error("s3", "head_bucket", "404", 404)
    aws.simulation(BUCKET_ARN, BUCKET_ACTIONS, principal=role)
    aws.simulation(ROLE_ARN, aws_preflight.IAM_ACTIONS, principal=role)
    aws.cluster()
    assert checks()["S3 bucket"].status == "passed"
    aws.all_answered()


def test_without_credentials_nothing_is_asked_and_nothing_passes(monkeypatch, tmp_path):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")  # the real client factory: it must not go out
    with pytest.warns(
        UserWarning, match="skipped the AWS credentials, S3 bucket, .* pre-flight check"
    ):
        config()
    code, output = cli(tmp_path)
    assert code == 2 and "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set" in output
    assert "pre-flight passed" not in output


def test_clients_use_nebaris_environment_keys_and_the_clusters_region():
    """The real client factory (no call is made): the keys nebari deploys with, never a
    profile or the instance metadata service; bounded time-outs."""
    client = aws_preflight._aws_client("sts", "us-west-2")
    credentials = client._request_signer._credentials
    assert (credentials.access_key, credentials.secret_key) == ("AKIDEXAMPLE", "secret")
    assert client.meta.region_name == "us-west-2"
    assert client.meta.config.connect_timeout == 5 and client.meta.config.read_timeout == 20
