"""Backups and restores with the pods exactly as rendered, run as local processes
(support/pods.py) against real PostgreSQL clusters and real stores.

Data is seeded through the running deployment's real server; the backup CronJob's pod
dumps its database into the artifact volume, moto S3, the GCS emulator and Azurite;
the restore template's pod restores it into an empty database of a second cluster,
whose server (as rendered) must then serve every run, metric history, model and
artifact. Expected values come from the seed data and from psql, never from the code
under test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from support import emulators
from support import nebari as nb
from support.deployment import MLFLOW_BIN, render, running_deployment, server_volume
from support.pods import LocalPod, database_addresses, database_secrets, last_json_line, pod_spec
from support.release import find, render_release
from test_artifact_stores import BUCKET, STANDINS

from nebari_mlflow_plugin.stage import MlflowStage

pytestmark = pytest.mark.slow

KEEP = 2
COUNTED = ("experiments", "runs", "metrics", "params", "tags", "registered_models",
           "model_versions")  # fmt: skip
SEED = {
    "experiment": "backed-up",
    "model": "backed-up-model",
    "runs": [
        {"name": f"run-{i}", "params": {"alpha": str(i)}, "tags": {"team": "ml"},
         "loss": [round(1 / (s + 1 + i), 4) for s in range(4)], "note": f"note {i}"}
        for i in range(3)
    ],
}  # fmt: skip
SEED_SCRIPT = textwrap.dedent(
    """
    import json, sys, mlflow
    from mlflow import MlflowClient
    data = json.loads(sys.argv[1])
    mlflow.set_experiment(data["experiment"])
    ids = []
    for run in data["runs"]:
        with mlflow.start_run(run_name=run["name"]) as active:
            mlflow.log_params(run["params"]); mlflow.set_tags(run["tags"])
            for step, value in enumerate(run["loss"]):
                mlflow.log_metric("loss", value, step=step)
            mlflow.log_text(run["note"], "notes/note.txt")
            ids.append(active.info.run_id)
    client = MlflowClient()
    client.create_registered_model(data["model"])
    client.create_model_version(data["model"], client.get_run(ids[0]).info.artifact_uri, ids[0])
    print(json.dumps(ids))
    """
)


def counts(postgres) -> dict[str, int]:
    return {t: int(postgres.query(f"SELECT count(*) FROM {t}")) for t in COUNTED}


@pytest.fixture(scope="module")
def seeded(deployment) -> list[str]:
    env = {**os.environ, **deployment.client_env(), "MLFLOW_TRACKING_URI": deployment.service_url}
    out = subprocess.run([str(MLFLOW_BIN / "python"), "-c", SEED_SCRIPT, json.dumps(SEED)],
                         env=env, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def local_manifests(tmp_path: Path, **mlflow) -> list[dict]:
    config = nb.validate(nb.config_dict("local", {"workers": 2, **mlflow}))
    return render_release(nb.stage_for(config, tmp_path / "stage"), nb.STAGE_OUTPUTS)


def pod_of(manifests, name: str, workdir: Path, postgres, **kwargs) -> LocalPod:
    (workload,) = find(manifests, "CronJob", name)
    return LocalPod(pod_spec(workload), workdir, database_secrets(workload, postgres.password),
                    database_addresses(manifests, "dev", postgres.port), **kwargs)  # fmt: skip


def succeeded(pod: LocalPod) -> dict:
    finished = pod.run()
    assert [f.returncode for f in finished] == [0] * len(finished), finished[-1].output[-3000:]
    return last_json_line(finished[-1].output)


def test_scheduled_backups_land_on_the_artifact_volume_and_the_oldest_go(
    deployment, seeded, tmp_path
):
    manifests = local_manifests(tmp_path, backup={"keep": KEEP})
    artifacts = deployment.server.mounts["/mlartifacts"]
    expected = counts(deployment.postgres)
    names = []
    for attempt in range(KEEP + 1):
        pod = pod_of(manifests, "mlflow-backup", tmp_path / f"pod-{attempt}", deployment.postgres,
                     volumes={"artifacts": artifacts})  # fmt: skip
        made = succeeded(pod)
        names.append(made["backup"])
        folder = artifacts / "_backups" / made["backup"]
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["counts"] == expected  # nothing was written meanwhile
        assert manifest["schema_revision"] == deployment.postgres.query(
            "SELECT version_num FROM alembic_version"
        )
        dump = folder / "mlflow.dump"
        assert dump.stat().st_size == manifest["dump"]["bytes"] > 0
        # The next one gets its own name (names have one-second resolution).
        subprocess.run(["sleep", "1"], check=True)
    assert len(set(names)) == KEEP + 1
    kept = sorted(p.name for p in (artifacts / "_backups").iterdir())
    assert kept == sorted(names)[-KEEP:]


CLOUD_CLIENT = textwrap.dedent(
    """
    import json, os, sys
    provider, action = sys.argv[1:3]
    if provider == "aws":
        import boto3
        s3 = boto3.client("s3", endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"],
                          region_name=os.environ["AWS_DEFAULT_REGION"])
        if action == "create":
            s3.create_bucket(Bucket=os.environ["BUCKET"], CreateBucketConfiguration={
                "LocationConstraint": os.environ["AWS_DEFAULT_REGION"]})
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=os.environ["BUCKET"])
        keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
        read = lambda k: s3.get_object(Bucket=os.environ["BUCKET"], Key=k)["Body"].read()
    elif provider == "gcp":
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage
        gcs = storage.Client(project="test", credentials=AnonymousCredentials())
        bucket = gcs.create_bucket(os.environ["BUCKET"]) if action == "create" else gcs.bucket(os.environ["BUCKET"])
        keys = [b.name for b in gcs.list_blobs(os.environ["BUCKET"])]
        read = lambda k: bucket.blob(k).download_as_bytes()
    else:
        from azure.storage.blob import BlobServiceClient
        blobs = BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"])
        container = blobs.create_container("mlflow") if action == "create" else blobs.get_container_client("mlflow")
        keys = [b.name for b in container.list_blobs()]
        read = lambda k: container.download_blob(k).readall()
    manifests = {k: json.loads(read(k)) for k in keys if k.endswith("/manifest.json")}
    print(json.dumps({"keys": keys, "manifests": manifests}))
    """  # noqa: E501
)


def cloud_store(provider: str, env: dict, action: str) -> dict:
    out = subprocess.run([str(MLFLOW_BIN / "python"), "-c", CLOUD_CLIENT, provider, action],
                         env={**os.environ, **env}, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("provider", ["aws", "gcp", "azure"])
def test_backups_land_beside_the_artifacts_in_the_cloud_store(
    provider, deployment, seeded, tmp_path, monkeypatch
):
    nb.patch_cloud_lookups(monkeypatch)
    if reason := emulators.missing(provider):
        pytest.skip(reason)
    data = nb.config_dict(provider, {"workers": 2})
    config = nb.validate(data)
    stage = MlflowStage(tmp_path / "out", config)
    input_vars = stage.input_vars(nb.STAGE_OUTPUTS)
    locals_ = emulators.provider_locals(provider, input_vars, STANDINS[provider], tmp_path / "tf")
    manifests = render_release(stage, nb.STAGE_OUTPUTS, locals_)
    (server,) = find(manifests, "Deployment", "mlflow")
    args = pod_spec(server)["containers"][0]["args"]
    destination = args[args.index("--artifacts-destination") + 1]
    with emulators.emulator(provider, tmp_path / "emu") as emu:
        env = {**emu.server_env, "BUCKET": BUCKET, "AWS_DEFAULT_REGION": "us-west-2"}
        cloud_store(provider, env, "create")  # Terraform's bucket / container
        pod = pod_of(manifests, "mlflow-backup", tmp_path / "backup", deployment.postgres, env=env)
        made = succeeded(pod)
        # The restore template's fetch container finds it as the newest and downloads it.
        restore = pod_of(manifests, "mlflow-restore", tmp_path / "fetch", deployment.postgres,
                         env=env)  # fmt: skip
        fetch_name, fetch = restore.containers()[0]
        assert fetch_name == "fetch"
        fetch_env = {**os.environ, **fetch.env, **env, "PATH": f"{MLFLOW_BIN}:{os.environ['PATH']}"}
        fetched = subprocess.run(fetch.argv, env=fetch_env, capture_output=True, text=True,
                                 timeout=180)  # fmt: skip
        assert fetched.returncode == 0, fetched.stderr[-3000:]
        store = cloud_store(provider, env, "read")
    assert made["location"] == f"{destination}-backups/{made['backup']}"
    prefix = destination.rsplit("/", 1)[-1]  # the key prefix the server serves
    backup_keys = [k for k in store["keys"] if made["backup"] in k]
    assert sorted(k.rsplit("/", 1)[-1] for k in backup_keys) == ["manifest.json", "mlflow.dump"]
    assert all(k.startswith(f"{prefix}-backups/") for k in backup_keys), backup_keys
    (manifest,) = store["manifests"].values()
    assert manifest["counts"] == counts(deployment.postgres)
    assert last_json_line(fetched.stdout)["backup"] == made["backup"]
    dump = restore.workdir / "volumes" / "backup-work" / "mlflow.dump"
    assert dump.stat().st_size == manifest["dump"]["bytes"]


def test_restore_into_an_empty_database_then_the_server_serves_everything(
    deployment, seeded, tmp_path
):
    """A new cluster (destroy + deploy): an empty database, the kept artifact store."""
    manifests = local_manifests(tmp_path)
    artifacts = deployment.server.mounts["/mlartifacts"]
    backup = succeeded(pod_of(manifests, "mlflow-backup", tmp_path / "backup",
                              deployment.postgres, volumes={"artifacts": artifacts}))  # fmt: skip
    config = nb.validate(nb.config_dict("local", {"workers": 1}))
    new = tmp_path / "new-cluster"
    release = render(config, new)
    # The kept artifact store: the same files (a bucket would simply still be there).
    shutil.copytree(artifacts, server_volume(new, "artifacts"), symlinks=True)
    postgres = release.postgres(new).__enter__()
    try:
        restore = pod_of(release.manifests, "mlflow-restore", new / "restore", postgres,
                         volumes={"artifacts": server_volume(new, "artifacts")})  # fmt: skip
        verified = succeeded(restore)
        assert verified["ok"] and verified["backup"] == backup["backup"]
        assert counts(postgres) == counts(deployment.postgres)
    except BaseException:
        postgres.__exit__()
        raise
    with running_deployment(new, config, release=release, postgres=postgres) as dep:
        check_serves_seed(dep, seeded)


def check_serves_seed(dep, run_ids: list[str]) -> None:
    """Every seeded run (params, tags, metric history, artifact) and the model version."""
    experiment = dep.api(f"experiments/get-by-name?experiment_name={SEED['experiment']}")
    found = dep.api("runs/search", {"experiment_ids": [experiment["experiment"]["experiment_id"]]})
    runs = {r["info"]["run_name"]: r for r in found["runs"]}
    assert sorted(r["info"]["run_id"] for r in runs.values()) == sorted(run_ids)
    for seed in SEED["runs"]:
        run = runs[seed["name"]]
        assert {p["key"]: p["value"] for p in run["data"]["params"]} == seed["params"]
        assert {t["key"]: t["value"] for t in run["data"]["tags"]}.items() >= seed["tags"].items()
        history = dep.api(f"metrics/get-history?run_id={run['info']['run_id']}&metric_key=loss")
        assert [m["value"] for m in sorted(history["metrics"], key=lambda m: m["step"])] == seed[
            "loss"
        ]
        assert dep.artifact(run["info"], "notes/note.txt") == seed["note"]
    version = dep.api(f"model-versions/get?name={SEED['model']}&version=1")["model_version"]
    assert version["run_id"] == run_ids[0]
