"""What the backup and destroy journeys share: the seed data logged once per session
(tests/e2e/conftest.py `seeded`), the rendered backup/restore pods run as local
processes, the cloud stores read back through their own SDKs, and a fake cluster for
the CLI to drive.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _nebari.cli import create_cli
from typer.testing import CliRunner

from support import nebari as nb
from support.deployment import MLFLOW_BIN, server_deployment
from support.k8s_api import write_kubeconfig
from support.k8s_cluster import FakeCluster, serving
from support.pods import LocalPod, database_addresses, database_secrets, last_json_line, pod_spec
from support.release import find, render_release
from support.seed import SCRIPT as SEED_SCRIPT

COUNTED = ("experiments", "runs", "metrics", "params", "tags", "registered_models",
           "model_versions")  # fmt: skip
SEED = {
    "experiments": ["backed-up"],
    "model": "backed-up-model",
    "runs": [
        {"name": f"run-{i}", "params": {"alpha": str(i)}, "tags": {"team": "ml"},
         "loss": [round(1 / (s + 1 + i), 4) for s in range(4)], "note": f"note {i}"}
        for i in range(3)
    ],
}  # fmt: skip


def counts(postgres) -> dict[str, int]:
    return {t: int(postgres.query(f"SELECT count(*) FROM {t}")) for t in COUNTED}


def seed(deployment) -> list[str]:
    """Log SEED through the running deployment's server (as alice); the run ids."""
    env = {**os.environ, **deployment.client_env(), **deployment.token_env(),
           "MLFLOW_TRACKING_URI": deployment.service_url}  # fmt: skip
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
                    database_addresses(manifests, "dev", postgres.port), manifests=manifests,
                    **kwargs)  # fmt: skip


def succeeded(pod: LocalPod) -> dict:
    finished = pod.run()
    assert [f.returncode for f in finished] == [0] * len(finished), finished[-1].output[-3000:]
    return last_json_line(finished[-1].output)


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
    import hashlib
    dumps = {k: hashlib.sha256(read(k)).hexdigest() for k in keys if k.endswith("/mlflow.dump")}
    print(json.dumps({"keys": keys, "manifests": manifests, "sha256": dumps}))
    """  # noqa: E501
)


def cloud_store(provider: str, env: dict, action: str) -> dict:
    out = subprocess.run([str(MLFLOW_BIN / "python"), "-c", CLOUD_CLIENT, provider, action],
                         env={**os.environ, **env}, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def check_serves_seed(dep, run_ids: list[str]) -> None:
    """Every seeded run (params, tags, metric history, artifact) and the model version."""
    experiment = dep.api(f"experiments/get-by-name?experiment_name={SEED['experiments'][0]}")
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


@dataclass
class LocalKubelet:
    """Runs what the fake API server is asked for (support/k8s_cluster.py): Jobs' pods
    as rendered-and-posted, the server Deployment's scale as stop/start of the server."""

    manifests: list[dict]
    workdir: Path
    postgres: Any
    artifacts: Path
    deployment: Any = None  # the running server (support.deployment.Deployment)
    secrets: dict = field(default_factory=dict)
    jobs: list[dict] = field(default_factory=list)

    def pod(self, spec: dict, name: str, secrets: dict) -> LocalPod:
        addresses = database_addresses(self.manifests, "dev", self.postgres.port)
        return LocalPod(spec, self.workdir / name, secrets, addresses,
                        volumes={"artifacts": self.artifacts},
                        manifests=self.manifests)  # fmt: skip

    def run_job(self, job: dict) -> list:
        self.jobs.append(job)
        secrets = database_secrets(job, self.postgres.password)
        return self.pod(job["spec"]["template"]["spec"], job["metadata"]["name"], secrets).run()

    def scale(self, deployment: dict, replicas: int) -> None:
        if replicas == 0:
            self.deployment.stop_server()
            return
        # A new server pod: its init containers (pre-upgrade check, migrate-database), then
        # the server.
        spec = {**deployment["spec"]["template"]["spec"], "containers": []}
        finished = self.pod(spec, f"server-{len(self.jobs)}", self.secrets).run()
        assert all(f.returncode == 0 for f in finished), finished[-1].output[-3000:]
        self.deployment.start_server()


def cli(*args: str, answer: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(create_cli(), ["mlflow", *args], env={"COLUMNS": "300"},
                                input=answer, catch_exceptions=False)  # fmt: skip
    # Words only: table borders (box-drawing characters) and line breaks become spaces.
    return result.exit_code, " ".join(re.sub("[\u2500-\u257f]", " ", result.output).split())


def database_objects(manifests) -> dict[str, dict[str, dict]]:
    """The release's claims and its PostgreSQL StatefulSet, ready (a local PostgreSQL
    serves the database), as the API server holds them after a deploy."""
    claims = {c["metadata"]["name"]: c for c in find(manifests, "PersistentVolumeClaim")}
    ready = {"replicas": 1, "readyReplicas": 1}
    statefulsets = {s["metadata"]["name"]: {**s, "status": ready}
                    for s in find(manifests, "StatefulSet")}  # fmt: skip
    return {"persistentvolumeclaims": claims, "statefulsets": statefulsets}


@contextlib.contextmanager
def fake_cluster(manifests, kubelet, config_file: Path):
    """The fake API server holding the release's CronJobs, Deployment and database
    objects; the CLI's args."""
    cronjobs = {c["metadata"]["name"]: c for c in find(manifests, "CronJob")}
    cluster = FakeCluster("dev", cronjobs, server_deployment(manifests), kubelet,
                          objects=database_objects(manifests))  # fmt: skip
    with serving(cluster) as url:
        kubeconfig = write_kubeconfig(config_file.with_name(f"kube-{id(cluster)}"), {"c": url}, "c")
        yield cluster, ["-c", str(config_file), "--kubeconfig", str(kubeconfig), "--timeout", "300"]
