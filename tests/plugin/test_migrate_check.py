"""`nebari mlflow migrate --check` as an admin runs it: offline, from a state file.

The state files hold what the 2025.10.x templates (read from the public wheel)
leave in the stage's state: its helm_release with the values it passed, and the
cloud store's attributes.
"""

from __future__ import annotations

import json

import pytest
import yaml
from _nebari.cli import create_cli
from support import nebari as nb
from support import public_plugin
from typer.testing import CliRunner

pytestmark = pytest.mark.skipif(
    bool(public_plugin.missing()), reason=public_plugin.missing() or "present"
)
BUCKET = "demo-mlflow-artifacts-1a2b"
KMS_ARN = "arn:aws:kms:us-west-2:123456789012:key/0a1b2c3d-1111-2222-3333-444455556666"


@pytest.fixture(autouse=True)
def _offline_cloud(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(create_cli(), list(args), catch_exceptions=False)
    return result.exit_code, " ".join(result.output.split())


def write_config(tmp_path, provider: str, mlflow: dict | None = None):
    path = tmp_path / "nebari-config.yaml"
    path.write_text(yaml.safe_dump(nb.config_dict(provider, mlflow or {})))
    return path


def old_values(provider: str, extra: dict) -> list[str]:
    files = public_plugin.template_files(provider)
    return [files["shared_helm_values.yaml"], files["values.yaml"], json.dumps(extra)]


def state_file(tmp_path, provider: str, extra_values: dict, resources: list[dict]):
    release = {"name": "demo-mlflow", "namespace": "dev",
               "values": old_values(provider, extra_values)}  # fmt: skip
    state = {"version": 4, "resources": [
        {"mode": "managed", "type": "helm_release", "name": "mlflow",
         "instances": [{"index_key": 0, "attributes": release}]},
        *resources,
    ]}  # fmt: skip
    path = tmp_path / "state.json"
    path.write_text(json.dumps(state))
    return path


def aws_state(tmp_path):
    return state_file(
        tmp_path, "aws",
        {"minio": {"enabled": False}, "externalS3": {"bucket": BUCKET, "serveArtifacts": True}},
        [{"mode": "managed", "type": "aws_s3_bucket", "name": "artifact_storage",
          "instances": [{"attributes": {"bucket": BUCKET}}]},
         {"mode": "managed", "type": "aws_kms_key", "name": "mlflow_kms_key",
          "instances": [{"index_key": 0, "attributes": {"arn": KMS_ARN}}]}],
    )  # fmt: skip


def test_a_fresh_config_is_a_fresh_install(tmp_path):
    code, output = run("mlflow", "migrate", "--check", "--offline",
                       "-c", str(write_config(tmp_path, "local")))  # fmt: skip
    assert code == 0, output
    assert "No deployment of nebari-mlflow-plugin 2025.10.x found" in output
    assert "fresh install" in output


def test_aws_takeover_names_the_config_it_needs_and_what_happens(tmp_path):
    code, output = run("mlflow", "migrate", "--check", "--offline",
                       "-c", str(write_config(tmp_path, "aws")),
                       "--state", str(aws_state(tmp_path)))  # fmt: skip
    assert code == 1, output
    assert f"set mlflow.aws.bucket_name: {BUCKET}" in output
    assert f"set mlflow.aws.kms_key_arn: {KMS_ARN}" in output
    assert "aws_s3_bucket.artifact_storage: moved to aws_s3_bucket.artifacts[0]" in output
    assert "aws_kms_key.mlflow_kms_key[0]: kept (forgotten)" in output
    assert "helm_release.mlflow: kept (forgotten)" in output
    # Bitnami's chart with no externalS3.host kept artifacts on the tracking volume.
    assert "demo-mlflow-tracking" in output and "scale deployment demo-mlflow-tracking" in output
    assert "bitnami_mlflow (user bn_mlflow) from demo-mlflow-postgresql:5432" in output


def test_aws_takeover_with_the_old_bucket_and_key_configured_may_deploy(tmp_path):
    config = write_config(tmp_path, "aws", {"aws": {"bucket_name": BUCKET, "kms_key_arn": KMS_ARN}})
    code, output = run("mlflow", "migrate", "--check", "--offline", "-c", str(config),
                       "--state", str(aws_state(tmp_path)))  # fmt: skip
    assert code == 0, output
    assert "Before deploying" not in output
    assert "migrate --finish" in output


def test_local_takeover_copies_the_old_minio(tmp_path):
    minio = {"minio": {"enabled": True, "auth": {"rootUser": "minio", "rootPassword": "pw"},
                       "defaultBuckets": "mlflow"}}  # fmt: skip
    code, output = run("mlflow", "migrate", "--check", "--offline",
                       "-c", str(write_config(tmp_path, "local")),
                       "--state", str(state_file(tmp_path, "local", minio, [])))  # fmt: skip
    assert code == 0, output
    assert "copy the experiment folders of s3://mlflow (http://demo-mlflow-minio:80)" in output
    assert "pw" not in output.split()  # the password is read from the Secret, never printed


def test_a_broken_state_file_is_one_line(tmp_path):
    bad = tmp_path / "state.json"
    bad.write_text("not json")
    code, output = run("mlflow", "migrate", "--check", "--offline",
                       "-c", str(write_config(tmp_path, "local")), "--state", str(bad))  # fmt: skip
    assert code == 1
    assert output.startswith("error:") and "Traceback" not in output


def test_a_disabled_2025_10_deployment_still_has_its_aws_bucket_adopted(tmp_path):
    """2025.10.x with mlflow.enabled: false left no release, but its bucket and key
    (unconditional in its AWS template) are in the state."""
    state = json.loads(aws_state(tmp_path).read_text())
    state["resources"] = [r for r in state["resources"] if r["type"] != "helm_release"]
    path = tmp_path / "disabled.json"
    path.write_text(json.dumps(state))
    code, output = run("mlflow", "migrate", "--check", "--offline",
                       "-c", str(write_config(tmp_path, "aws")), "--state", str(path))  # fmt: skip
    assert code == 1, output
    assert "no Helm release (it was disabled)" in output and "Nothing to copy" in output
    assert f"set mlflow.aws.bucket_name: {BUCKET}" in output


AWS_ADOPTING = {"aws": {"bucket_name": BUCKET, "kms_key_arn": KMS_ARN}}


@pytest.mark.parametrize(
    ("replicas", "access_modes", "warned"),
    [(2, None, True), (1, None, False), (2, ["ReadWriteMany"], False)],
)
def test_check_warns_that_replicas_wait_for_a_read_write_once_volume(
    tmp_path, replicas, access_modes, warned
):
    """On AWS/Azure the old artifacts sit on the tracking claim (Bitnami: ReadWriteOnce):
    one node at a time, so the takeover deploy runs one replica until --finish."""
    extra = {"minio": {"enabled": False}, "externalS3": {"bucket": BUCKET, "serveArtifacts": True}}
    if access_modes:
        extra["tracking"] = {"persistence": {"accessModes": access_modes}}
    state = state_file(tmp_path, "aws", extra, json.loads(aws_state(tmp_path).read_text())[
        "resources"][1:])  # fmt: skip
    config = write_config(tmp_path, "aws", {**AWS_ADOPTING, "replicas": replicas})
    code, output = run("mlflow", "migrate", "--check", "--offline", "-c", str(config),
                       "--state", str(state))  # fmt: skip
    assert code == 0, output
    said = (
        f"WARNING: mlflow.replicas is {replicas}, but the old artifacts are on claim "
        "demo-mlflow-tracking (ReadWriteOnce: one node at a time)"
    )
    assert (said in output) is warned, output
    if warned:
        assert "the deploy runs 1 replica until `nebari mlflow migrate --finish`" in output
