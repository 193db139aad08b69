"""Which MLflow 3.x server features run, decided by the plugin (MLflow turns them on by
default), and what is on is secure: the server as rendered, for real."""

from __future__ import annotations

import json
import urllib.request

import pytest
from support import nebari as nb
from support.deployment import (
    missing_tools,
    running_deployment,
    server_container,
    server_deployment,
)


def server_info(deployment) -> dict:
    return json.loads(deployment._call("api/3.0/mlflow/server-info"))


def secrets_config(deployment) -> tuple[int, dict]:
    try:
        return 200, json.loads(deployment._call("ajax-api/3.0/mlflow/gateway/secrets/config"))
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def job_runner_started(deployment) -> bool:
    """MLflow starts a job-runner process beside uvicorn when job execution is on."""
    import subprocess

    tree = subprocess.run(
        ["ps", "-o", "args=", "-g", str(deployment.process.pid)],
        capture_output=True, text=True, timeout=10,
    ).stdout  # fmt: skip
    return "huey" in tree or "_job_runner" in tree


def test_by_default_the_ai_gateway_and_server_jobs_are_off(deployment):
    assert server_info(deployment)["features_enabled"]["gateway"] is False
    status, _ = secrets_config(deployment)
    assert status >= 400  # the gateway's endpoints answer nothing
    assert not job_runner_started(deployment)


def test_the_passphrase_is_generated_never_mlflows_public_default(deployment):
    deployment_obj = server_deployment(deployment.manifests)
    env = {e["name"]: e for e in server_container(deployment_obj)["env"]}
    ref = env["MLFLOW_CRYPTO_KEK_PASSPHRASE"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == "mlflow-crypto"  # created by Terraform from random_password
    assert "value" not in env["MLFLOW_CRYPTO_KEK_PASSPHRASE"]


@pytest.fixture(scope="module")
def gateway_deployment(tmp_path_factory):
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    config = nb.validate(nb.config_dict("local", {"workers": 1, "ai_gateway": True}))
    with running_deployment(tmp_path_factory.mktemp("gateway"), config) as running:
        yield running


def test_with_the_ai_gateway_on_stored_keys_use_the_generated_passphrase(gateway_deployment):
    assert server_info(gateway_deployment)["features_enabled"]["gateway"] is True
    status, config = secrets_config(gateway_deployment)
    assert status == 200, config
    assert config == {"secrets_available": True, "using_default_passphrase": False}
    assert not job_runner_started(gateway_deployment)
