"""Large artifacts move between a user's pod and the cloud store directly, through URLs
the server presigns after checking the user's permission on the run.

The deployment runs as rendered for the cloud (auth on, JupyterHub, the chart's server
with Terraform's locals stood in), its store an emulator: moto for S3, Azurite for Azure
Blob. Clients run with the environment the plugin injects into user pods; a file one
MiB above the rendered threshold is logged and read back. That the bytes bypassed the
server is read from the store's side: every part PUT and ranged GET of the object in
moto's request log carries a presigned signature; on Azure the blob is committed from
the blocks MLflow's presigned upload names. Who may ask for URLs: the deployment's
default is NO_PERMISSIONS, and bob gets alice's experiment through group shares.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import textwrap
import uuid
from pathlib import Path

import pytest
from support import emulators
from support import nebari as nb
from support.backup_journey import cloud_store
from support.deployment import MLFLOW_BIN, render, running_deployment
from support.emulators import BUCKET, STANDINS
from support.load import pod_env
from support.rest import call
from support.transfer import MiB
from test_auth import as_user

pytestmark = pytest.mark.slow

# In a pod (the MLflow virtualenv, the injected env): log `size` bytes as big.bin into a
# new run of `experiment`, or download a run's big.bin; sha256 of what was sent / got.
CLIENT = textwrap.dedent(
    """
    import hashlib, json, os, pathlib, sys
    import mlflow
    action, work = sys.argv[1:3]
    if action == "log":
        experiment, size = sys.argv[3], int(sys.argv[4])
        src = pathlib.Path(work, "big.bin")
        block = os.urandom(1 << 20)
        with src.open("wb") as f:
            for start in range(0, size, len(block)):
                f.write(block[: size - start])
        mlflow.set_experiment(experiment)
        with mlflow.start_run() as run:
            mlflow.log_artifact(str(src))
        print(json.dumps({"run": run.info.run_id, "experiment": run.info.experiment_id,
                          "sha256": hashlib.sha256(src.read_bytes()).hexdigest()}))
    else:
        got = mlflow.artifacts.download_artifacts(run_id=sys.argv[3], artifact_path="big.bin",
                                                  dst_path=str(pathlib.Path(work, "got")))
        print(json.dumps({"sha256": hashlib.sha256(pathlib.Path(got).read_bytes()).hexdigest()}))
    """
)

# What landed in the store, read back with its own SDK (Terraform's bucket or container
# is made by backup_journey.cloud_store(..., "create")).
STORE = textwrap.dedent(
    """
    import hashlib, json, os, sys
    provider, key = sys.argv[1:3]
    if provider == "aws":
        import boto3
        s3 = boto3.client("s3", endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"],
                          region_name=os.environ["AWS_DEFAULT_REGION"])
        body = s3.get_object(Bucket=os.environ["BUCKET"], Key=key)["Body"].read()
        print(json.dumps({"sha256": hashlib.sha256(body).hexdigest()}))
    else:
        from azure.storage.blob import BlobServiceClient
        blobs = BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"])
        blob = blobs.get_blob_client("mlflow", key)
        committed, _ = blob.get_block_list("committed")
        print(json.dumps({"sha256": hashlib.sha256(blob.download_blob().readall()).hexdigest(),
                          "blocks": [b.id for b in committed]}))
    """  # noqa: E501
)


# MLflow's MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE (unset in pods).
CHUNK = 10 * MiB


def run_python(script: str, *args: str, env: dict[str, str]) -> dict:
    out = subprocess.run([str(MLFLOW_BIN / "python"), "-c", script, *args], env=env,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


@contextlib.contextmanager
def cloud_deployment(provider: str, workdir: Path):
    """(deployment, emulator, store env) of `provider`, default permission NO_PERMISSIONS."""
    if reason := emulators.missing(provider):
        pytest.skip(reason)
    with pytest.MonkeyPatch.context() as monkeypatch:
        nb.patch_cloud_lookups(monkeypatch)
        private = {"default_permission": "NO_PERMISSIONS"}
        data = nb.config_dict(provider, {"workers": 1, "prometheus": False, "auth": private})
        if provider == "azure":
            data["azure"]["workload_identity_enabled"] = True
        config = nb.validate(data)
        input_vars = nb.stage_for(config, workdir / "vars").input_vars(nb.STAGE_OUTPUTS)
        locals_ = emulators.provider_locals(provider, input_vars, STANDINS[provider],
                                            workdir / "tf")  # fmt: skip
        release = render(config, workdir, provider_locals=locals_)
        with emulators.emulator(provider, workdir / "emu") as emu:
            store_env = {**os.environ, **emu.server_env, "BUCKET": BUCKET,
                         "AWS_DEFAULT_REGION": "us-west-2"}  # fmt: skip
            cloud_store(provider, store_env, "create")
            server_env = {**emu.server_env, "AWS_DEFAULT_REGION": "us-west-2"}
            with running_deployment(workdir, config, release=release,
                                    server_env=server_env) as dep:  # fmt: skip
                yield dep, emu, store_env


STORE_CREDENTIALS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                     "MLFLOW_S3_ENDPOINT_URL", "AZURE_STORAGE_CONNECTION_STRING"}  # fmt: skip


def user_env(dep, workdir: Path, user: str) -> dict[str, str]:
    """A process in `user`'s pod, with the env the plugin injects: no store credentials."""
    env = pod_env(dep, workdir)
    env.update(JUPYTERHUB_API_TOKEN=dep.tokens[user], JUPYTERHUB_USER=user)
    assert not STORE_CREDENTIALS & env.keys(), env
    return env


def share(dep, experiment_id: str, level: str) -> None:
    status, body = call(dep, "experiments/set-experiment-tag",
                        {"experiment_id": experiment_id, "key": "nebari.share./developer",
                         "value": level}, as_user(dep, "alice"))  # fmt: skip
    assert status == 200, body


def mpu(dep, user: str, action: str, run: dict, body: dict) -> tuple[int, bytes]:
    """POST .../mlflow-artifacts/mpu/<action>/<run's artifact root> as `user`."""
    root = f"{run['experiment']}/{run['run']}/artifacts"
    prefix = dep.config.mlflow.route_path
    return call(dep, f"{prefix}/api/2.0/mlflow-artifacts/mpu/{action}/{root}", body,
                as_user(dep, user))  # fmt: skip


def presigned_download(dep, user: str, run: dict) -> int:
    root = f"{run['experiment']}/{run['run']}/artifacts"
    prefix = dep.config.mlflow.route_path
    return call(dep, f"{prefix}/api/2.0/mlflow-artifacts/presigned/{root}/big.bin",
                headers=as_user(dep, user))[0]  # fmt: skip


def log_big(env: dict[str, str], workdir: Path, user: str = "alice") -> dict:
    """`user` logs a file one MiB above the upload threshold MLflow reads from the
    injected env (MLflow's own 500 MiB default when the env names none)."""
    size = int(env.get("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", 500 * MiB)) + MiB
    workdir.mkdir(parents=True, exist_ok=True)
    experiment = f"users/{user}/big-{uuid.uuid4().hex}"
    logged = run_python(CLIENT, "log", str(workdir), experiment, str(size), env=env)
    logged["key"] = f"artifacts/{logged['experiment']}/{logged['run']}/artifacts/big.bin"
    logged["parts"] = -(-size // CHUNK)
    return logged


def test_on_aws_large_artifacts_bypass_the_server_and_only_permitted_users_get_urls(
    tmp_path_factory, tmp_path
):
    with cloud_deployment("aws", tmp_path_factory.mktemp("aws")) as (dep, emu, store_env):
        alice = user_env(dep, tmp_path / "alice", "alice")
        assert alice["MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD"] == "true"
        logged = log_big(alice, tmp_path / "alice")
        key = logged["key"]
        assert run_python(STORE, "aws", key, env=store_env)["sha256"] == logged["sha256"]
        requests = [line for line in emu_log(emu) if f"/{BUCKET}/{key}" in line]
        part_puts = [r for r in requests if '"PUT ' in r and "partNumber=" in r]
        assert len(part_puts) == logged["parts"], requests
        assert all("X-Amz-Signature=" in r for r in part_puts), part_puts
        # No other PUT of the object (the server's own upload would be one).
        assert [r for r in requests if '"PUT ' in r] == part_puts

        bob = user_env(dep, tmp_path / "bob", "bob")
        create = {"path": "big.bin", "num_parts": 1}
        # Not shared: no URL to write, none to read.
        assert mpu(dep, "bob", "create", logged, create)[0] == 403
        assert presigned_download(dep, "bob", logged) == 403
        # READ through /developer: URLs to read, never to write, nor a hand in hers.
        share(dep, logged["experiment"], "READ")
        assert mpu(dep, "bob", "create", logged, create)[0] == 403
        status, body = mpu(dep, "alice", "create", logged, create)
        assert status == 200, body
        completion = {"path": "big.bin", "upload_id": json.loads(body)["upload_id"], "parts": []}
        assert mpu(dep, "bob", "complete", logged, completion)[0] == 403
        assert mpu(dep, "bob", "abort", logged, completion)[0] == 403
        assert mpu(dep, "alice", "abort", logged, completion)[0] == 200
        assert presigned_download(dep, "bob", logged) == 200
        assert bob["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] == "true"
        before = len(emu_log(emu))
        got = run_python(CLIENT, "download", str(tmp_path / "bob"), logged["run"], env=bob)
        assert got["sha256"] == logged["sha256"]
        reads = [r for r in emu_log(emu)[before:] if f"/{BUCKET}/{key}" in r and '"GET ' in r]
        assert reads and all("X-Amz-Signature=" in r for r in reads), reads
        # EDIT: bob may start an upload to the run.
        share(dep, logged["experiment"], "EDIT")
        assert mpu(dep, "bob", "create", logged, create)[0] == 200


def test_on_azure_pods_upload_through_the_server_which_mlflow_alone_would_not(
    tmp_path_factory, tmp_path
):
    """MLflow 3.17 advertises presigned uploads for Azure Blob, and its block ids break
    them from the 10th part; the plugin tells pods not to: as rendered a large upload
    arrives whole, with the variable unset (MLflow deciding) it fails."""
    with cloud_deployment("azure", tmp_path_factory.mktemp("azure")) as (dep, _, store_env):
        alice = user_env(dep, tmp_path / "alice", "alice")
        assert alice["MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD"] == "false"
        assert alice["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] == "false"
        # The size at which MLflow would go presigned, and more than nine parts.
        alice["MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE"] = str(100 * MiB)
        logged = log_big(alice, tmp_path / "as-rendered")
        stored = run_python(STORE, "azure", logged["key"], env=store_env)
        assert stored["sha256"] == logged["sha256"]
        assert not [b for b in stored["blocks"] if "mlflow_block" in b], stored["blocks"]

        del alice["MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD"]
        with pytest.raises(AssertionError, match="InvalidBlobOrBlock"):
            log_big(alice, tmp_path / "mlflow-decides")


def emu_log(emu) -> list[str]:
    """The emulator's request log (moto: one werkzeug line per request)."""
    text = (emu.workdir / f"{emu.name}.log").read_text(errors="replace")
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # werkzeug colours 206s and 204s
    return [line for line in text.splitlines() if re.search(r'"(GET|PUT|POST|DELETE) ', line)]
