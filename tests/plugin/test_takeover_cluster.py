"""The takeover against a cluster (a loopback Kubernetes API holding objects, the real
kubernetes client): the old release found from its Helm record after the state forgot
it, `--finish` refused until every takeover container reported verified counts, then
the old release removed and its volumes kept."""

from __future__ import annotations

import base64
import gzip
import json

import pytest
import yaml
from _nebari.cli import create_cli
from support import nebari as nb
from support.k8s_api import write_kubeconfig
from support.k8s_store import serving
from typer.testing import CliRunner

RELEASE = "demo-mlflow"
INSTANCE = {"app.kubernetes.io/instance": RELEASE}
SERVER = {"app.kubernetes.io/instance": "mlflow", "app.kubernetes.io/component": "server"}


@pytest.fixture(autouse=True)
def _offline_cloud(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)


def helm_record(values: dict) -> dict:
    """A Helm 3 storage Secret as `helm install` writes it."""
    release = {"name": RELEASE, "namespace": "dev", "version": 1, "config": values,
               "chart": {"metadata": {"name": "mlflow", "version": "5.1.17",
                                      "home": "https://bitnami.com"}}}  # fmt: skip
    encoded = base64.b64encode(gzip.compress(json.dumps(release).encode())).decode()
    return {"metadata": {"name": f"sh.helm.release.v1.{RELEASE}.v1",
                         "labels": {"owner": "helm", "name": RELEASE, "status": "deployed",
                                    "version": "1"}},
            "type": "helm.sh/release.v1",
            "data": {"release": base64.b64encode(encoded.encode()).decode()}}  # fmt: skip


def named(name: str, labels: dict) -> dict:
    return {"metadata": {"name": name, "namespace": "dev", "labels": labels}}


def server_pod(messages: dict[str, dict]) -> dict:
    def status(name: str, report: dict) -> dict:
        terminated = {"exitCode": 0, "message": json.dumps(report)}
        return {"name": name, "image": "x", "imageID": "x", "ready": False, "restartCount": 0,
                "state": {"terminated": terminated}}  # fmt: skip

    pod = named("mlflow-abc", SERVER)
    pod["status"] = {"initContainerStatuses": [status(n, r) for n, r in messages.items()]}
    return pod


def tracking(destination: str) -> dict:
    """The old tracking Deployment with the args Bitnami's chart gives the server."""
    deployment = named(f"{RELEASE}-tracking", INSTANCE)
    args = ["server", "--backend-store-uri=postgresql://...",
            f"--artifacts-destination={destination}", "--serve-artifacts"]  # fmt: skip
    deployment["spec"] = {
        "selector": {"matchLabels": INSTANCE},
        "template": {
            "metadata": {"labels": INSTANCE},
            "spec": {"containers": [{"name": "mlflow", "command": ["mlflow"], "args": args}]},
        },
    }
    return deployment


def cluster(pod_messages: dict[str, dict], destination: str = "s3://mlflow") -> dict[str, list]:
    minio = {"minio": {"enabled": True, "defaultBuckets": "mlflow"}}
    return {
        "secrets": [helm_record(minio), named(f"{RELEASE}-postgresql", INSTANCE)],
        "deployments": [tracking(destination), named(f"{RELEASE}-minio", INSTANCE),
                        named("mlflow", {"app.kubernetes.io/instance": "mlflow"})],
        "statefulsets": [named(f"{RELEASE}-postgresql", INSTANCE)],
        "services": [named(f"{RELEASE}-tracking", INSTANCE)],
        "persistentvolumeclaims": [named(f"data-{RELEASE}-postgresql-0", INSTANCE),
                                   named(f"{RELEASE}-minio", INSTANCE)],
        "pods": [server_pod(pod_messages)],
    }  # fmt: skip


VERIFIED = {
    "takeover-database": {"database": {"verified": True, "tables": {"runs": [3, "3"]}}},
    "takeover-artifacts": {"artifacts": {"verified": True, "files": [6, 6]}},
}


def run(tmp_path, store, *args: str, provider: str = "local") -> tuple[int, str]:
    config = tmp_path / "nebari-config.yaml"
    config.write_text(yaml.safe_dump(nb.config_dict(provider)))
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {"kind": store.url}, "kind")
    result = CliRunner().invoke(
        create_cli(), ["mlflow", "migrate", *args, "-c", str(config), "--kubeconfig",
                       str(kubeconfig), "--context", "kind"], catch_exceptions=False,
    )  # fmt: skip
    return result.exit_code, " ".join(result.output.split())


def test_check_finds_the_old_release_from_its_helm_record(tmp_path):
    with serving(cluster(VERIFIED)) as store:
        code, output = run(tmp_path, store, "--check")
    assert code == 0, output
    assert "2025.10.x deployment found (cluster): Helm release 'demo-mlflow'" in output
    assert "s3://mlflow (http://demo-mlflow-minio:80)" in output
    assert "verified: `--finish` may run" in output
    assert "--artifacts-destination (cluster): s3://mlflow" in output
    assert store.deleted == []  # --check changes nothing


def test_check_refuses_when_the_old_server_stores_artifacts_elsewhere(tmp_path):
    elsewhere = "wasbs://nebari-mlflow@demomlfsa.blob.core.windows.net"
    with serving(cluster(VERIFIED, destination=elsewhere)) as store:
        code, output = run(tmp_path, store, "--check")
    assert code == 1, output
    assert f"the old server stores artifacts at {elsewhere}, not at s3://mlflow" in output


def test_check_without_state_names_the_aws_bucket_from_the_old_values(tmp_path):
    objects = cluster(VERIFIED, destination="/bitnami/mlflow/mlartifacts")
    aws = {"minio": {"enabled": False}, "externalS3": {"bucket": "demo-mlflow-artifacts-9f9f"}}
    objects["secrets"][0] = helm_record(aws)
    with serving(objects) as store:
        code, output = run(tmp_path, store, "--check", provider="aws")
    assert code == 1, output
    assert "set mlflow.aws.bucket_name: demo-mlflow-artifacts-9f9f" in output
    assert "Only the state knows the old KMS key" in output
    assert "demo-mlflow-tracking" in output  # its artifacts are on the tracking volume


def test_finish_is_refused_until_every_container_verified(tmp_path):
    unverified = {**VERIFIED, "takeover-artifacts": {"artifacts": {"verified": False}}}
    with serving(cluster(unverified)) as store:
        code, output = run(tmp_path, store, "--finish")
    assert code == 1
    assert "not verified, so 'demo-mlflow' stays" in output and "Traceback" not in output
    assert store.deleted == []


def test_finish_removes_the_old_release_and_keeps_its_volumes(tmp_path):
    with serving(cluster(VERIFIED)) as store:
        code, output = run(tmp_path, store, "--finish")
        left = store.objects
    assert code == 0, output
    assert "deployments/demo-mlflow-tracking" in store.deleted
    assert "statefulsets/demo-mlflow-postgresql" in store.deleted
    assert f"secrets/sh.helm.release.v1.{RELEASE}.v1" == store.deleted[-1]  # Helm's record last
    assert "mlflow" in left["deployments"]  # ours untouched
    assert set(left["persistentvolumeclaims"]) == {f"data-{RELEASE}-postgresql-0",
                                                   f"{RELEASE}-minio"}  # fmt: skip
    assert "kept the PersistentVolumeClaims" in output


def test_finish_with_nothing_to_finish_says_so(tmp_path):
    objects = cluster(VERIFIED)
    objects["secrets"] = []
    with serving(objects) as store:
        code, output = run(tmp_path, store, "--finish")
    assert code == 1 and "nothing to finish" in output


# -- detection on deploy ------------------------------------------------------------------


def our_release_state(takeover_values: dict | None) -> dict:
    values = [json.dumps({"takeover": takeover_values} if takeover_values else {})]
    return {
        "resources": [
            {
                "module": "module.mlflow[0]",
                "mode": "managed",
                "type": "helm_release",
                "name": "mlflow",
                "instances": [{"index_key": None, "attributes": {"values": values}}],
            }
        ]
    }


def detect(tmp_path, monkeypatch, state: dict, store=None):
    from nebari_mlflow_plugin.lifecycle import takeover_cluster

    monkeypatch.setattr(takeover_cluster, "pull_state", lambda directory: state)  # tofu
    config = nb.validate(nb.config_dict("local"))
    kubeconfig = tmp_path / "kubeconfig"
    if store is not None:
        write_kubeconfig(kubeconfig, {"kind": store.url}, "kind")
    infrastructure = {"kubeconfig_filename": {"value": str(kubeconfig)}}
    outputs = {**nb.STAGE_OUTPUTS, "stages/02-infrastructure": infrastructure}
    return takeover_cluster.detect(config, str(tmp_path), outputs)


def test_a_fresh_deploy_never_asks_the_cluster(tmp_path, monkeypatch):
    assert detect(tmp_path, monkeypatch, {}) is None  # no kubeconfig exists: not read
    assert detect(tmp_path, monkeypatch, our_release_state(None)) is None


def test_later_deploys_keep_the_takeover_until_finish_removed_the_old_release(
    tmp_path, monkeypatch
):
    state = our_release_state({"release": RELEASE})
    with serving(cluster(VERIFIED)) as store:
        old = detect(tmp_path, monkeypatch, state, store)
        assert old is not None and old.release == RELEASE and old.found_in == "cluster"
        del store.objects["secrets"][f"sh.helm.release.v1.{RELEASE}.v1"]
        assert detect(tmp_path, monkeypatch, state, store) is None


def test_a_takeover_in_progress_without_a_cluster_stops_the_deploy(tmp_path, monkeypatch):
    from nebari_mlflow_plugin.lifecycle.takeover import TakeoverError

    with pytest.raises(TakeoverError, match=r"could not look for the 2025\.10\.x release"):
        detect(tmp_path, monkeypatch, our_release_state({"release": RELEASE}))
