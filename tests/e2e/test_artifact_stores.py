"""Artifacts really flow through MLflow's own S3, GCS and Azure Blob repositories.

The chart is rendered as `nebari deploy` would render it on each cloud (stage input
vars -> Terraform's locals with the cloud resources stood in -> Helm); the server
container's command and environment run as a local process from the MLflow
virtualenv, with only the emulator's test credentials added. A client process logs
and downloads an artifact through the `mlflow-artifacts` proxy, then reads the
object straight from the emulator to prove the bytes landed in the store.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from support import emulators
from support import nebari as nb
from support.emulators import BUCKET, STANDINS
from support.mlflow_server import MlflowServer
from support.podrun import local_container
from support.release import find, render_release

from nebari_mlflow_plugin.stages.mlflow_stage import MlflowStage

pytestmark = pytest.mark.slow

# Runs in the MLflow virtualenv: create the store's bucket/container (Terraform's job),
# log + download through the server, then read the object from the store directly.
CLIENT = textwrap.dedent(
    """
    import json, os, pathlib, sys
    provider, tracking_uri, work = sys.argv[1:4]
    payload = os.urandom(4096) + b"nebari-mlflow"
    if provider == "aws":
        import boto3
        s3 = boto3.client("s3", endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"],
                          region_name=os.environ["AWS_DEFAULT_REGION"])
        s3.create_bucket(Bucket=os.environ["BUCKET"],
                         CreateBucketConfiguration={"LocationConstraint": os.environ["AWS_DEFAULT_REGION"]})
        read = lambda key: s3.get_object(Bucket=os.environ["BUCKET"], Key=key)["Body"].read()
    elif provider == "gcp":
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage
        gcs = storage.Client(project="test", credentials=AnonymousCredentials())
        bucket = gcs.create_bucket(os.environ["BUCKET"])
        read = lambda key: bucket.blob(key).download_as_bytes()
    else:
        from azure.storage.blob import BlobServiceClient
        blobs = BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"])
        container = blobs.create_container("mlflow")
        read = lambda key: container.download_blob(key).readall()
    import mlflow
    mlflow.set_tracking_uri(tracking_uri)
    src = pathlib.Path(work, "model.bin"); src.write_bytes(payload)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(src), artifact_path="models")
    run = mlflow.get_run(run.info.run_id)
    got = pathlib.Path(mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="models/model.bin", dst_path=str(pathlib.Path(work, "dl"))))
    key = f"artifacts/{run.info.experiment_id}/{run.info.run_id}/artifacts/models/model.bin"
    print(json.dumps({"artifact_uri": run.info.artifact_uri,
                      "downloaded_ok": got.read_bytes() == payload,
                      "stored_ok": read(key) == payload, "key": key}))
    """  # noqa: E501
)


def server_container(provider: str, tmp_path: Path) -> dict:
    config_data = nb.config_dict(
        provider,
        {
            "database": {"type": "external", "external_secret": {"name": "mlflow-db"}},
            "workers": 1,
            "prometheus": False,
            # About where artifacts land, not who asks (tests/e2e/test_auth.py): this runs
            # the server container alone, without JupyterHub.
            "auth": {"enabled": False},
        },
    )
    if provider == "azure":
        config_data["azure"]["workload_identity_enabled"] = True
    config = nb.validate(config_data)
    stage = MlflowStage(tmp_path / "out", config)
    input_vars = stage.input_vars(nb.STAGE_OUTPUTS)
    locals_ = emulators.provider_locals(provider, input_vars, STANDINS[provider], tmp_path / "tf")
    manifests = render_release(stage, nb.STAGE_OUTPUTS, locals_)
    (deployment,) = find(manifests, "Deployment", "mlflow")
    spec = deployment["spec"]["template"]
    (container,) = [c for c in spec["spec"]["containers"] if c["name"] == "mlflow"]
    return {"container": container, "pod": spec, "deployment": deployment}


@pytest.mark.parametrize("provider", ["aws", "gcp", "azure"])
def test_artifacts_land_in_the_store(provider, tmp_path, monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)
    reason = emulators.missing(provider)
    if reason:
        pytest.skip(reason)
    rendered = server_container(provider, tmp_path)
    labels = rendered["pod"]["metadata"].get("labels", {})
    if provider == "azure":
        assert labels.get("azure.workload.identity/use") == "true"
    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    port = emulators.free_port()
    local = local_container(
        rendered["container"], workdir=tmp_path / "pod",
        executables={"mlflow": str(emulators.MLFLOW_VENV / "bin" / "mlflow")},
        secrets={"mlflow-db": {"uri": db}, "mlflow-crypto": {"passphrase": "a" * 48}},
        port=port,
    )  # fmt: skip
    argv = list(local.argv)
    # As podrun retargets the listen address: the pod's own host:port becomes loopback.
    hosts = argv.index("--allowed-hosts") + 1
    argv[hosts] += f",localhost:{port},127.0.0.1:{port}"
    destination = argv[argv.index("--artifacts-destination") + 1]
    assert destination.startswith({"aws": "s3://", "gcp": "gs://", "azure": "wasbs://"}[provider])
    with emulators.emulator(provider, tmp_path / "emu") as emu:
        env = {**local.env, **emu.server_env, "BUCKET": BUCKET, "MLFLOW_DISABLE_TELEMETRY": "true"}
        env.setdefault("AWS_DEFAULT_REGION", "us-west-2")
        server = MlflowServer(tmp_path / "server", port=port, static_prefix="/mlflow")
        log = server.log_path.open("ab")
        proc = subprocess.Popen(
            argv, env={**{k: v for k, v in os.environ.items() if k in {"PATH", "LANG", "HOME"}}, **env},  # noqa: E501
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        server.proc = proc
        try:
            server.wait_healthy()
            # The chart's --allowed-hosts admits localhost (probes), not a bare loopback IP.
            url = server.url.replace("127.0.0.1", "localhost")
            out = subprocess.run(
                [str(emulators.MLFLOW_VENV / "bin" / "python"), "-c", CLIENT, provider,
                 url, str(tmp_path)],
                env={**os.environ, **env, "MLFLOW_TRACKING_URI": url},
                capture_output=True, text=True, timeout=180,
            )  # fmt: skip
        finally:
            server.stop()
    assert out.returncode == 0, out.stderr[-3000:] + server.log_path.read_text()[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["artifact_uri"].startswith("mlflow-artifacts:")
    assert result["downloaded_ok"] and result["stored_ok"], result
