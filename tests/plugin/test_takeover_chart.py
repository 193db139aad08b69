"""The chart's takeover init containers as rendered: only when asked, before the
schema migration, valid Kubernetes, secrets by reference, the old volume read-only.
And the stage hands the chart takeover values only when it detected an old release."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest
from support import nebari as nb

from nebari_mlflow_plugin.lifecycle import takeover

NAMESPACE = "dev"
DEFAULT = {
    "database": {"internal": {"passwordSecret": {"name": "mlflow-postgres", "key": "password"}}}
}
MINIO = {"minio": {"enabled": True, "auth": {"rootUser": "minio"}, "defaultBuckets": "mlflow"}}
CLOUD_ON_VOLUME = {"minio": {"enabled": False}, "externalS3": {"bucket": "b"}}


def old(values: dict) -> takeover.OldDeployment:
    return takeover.OldDeployment(release="demo-mlflow", namespace=NAMESPACE, values=values)


def server_pod(manifests: list[dict]) -> dict:
    (deployment,) = [m for m in manifests if m["kind"] == "Deployment"
                     and m["metadata"]["name"] == "mlflow"]  # fmt: skip
    return deployment["spec"]["template"]["spec"]


def init_names(manifests: list[dict]) -> list[str]:
    """The server pod's init containers but the pre-upgrade backup's (test_backup_chart.py)."""
    names = [c["name"] for c in server_pod(manifests)["initContainers"]]
    return [n for n in names if not n.startswith("pre-upgrade-")]


def test_a_fresh_deployment_renders_none_of_it(render_chart):
    manifests = render_chart(DEFAULT, NAMESPACE)
    assert init_names(manifests) == ["migrate-database"]
    assert "takeover" not in json.dumps(server_pod(manifests))


def test_a_fresh_stage_hands_the_chart_no_takeover_values(tmp_path):
    stage = nb.stage_for(nb.validate(nb.config_dict("local")), tmp_path)
    assert "takeover" not in json.loads(stage.input_vars(nb.STAGE_OUTPUTS)["helm_values"])
    stage.takeover_from = old(MINIO)
    values = json.loads(stage.input_vars(nb.STAGE_OUTPUTS)["helm_values"])
    assert values["takeover"]["release"] == "demo-mlflow"


@pytest.mark.parametrize("values", [MINIO, CLOUD_ON_VOLUME], ids=["minio", "tracking-volume"])
def test_takeover_runs_before_the_migration_and_validates(render_chart, values):
    manifests = render_chart({**DEFAULT, "takeover": old(values).chart_values()}, NAMESPACE)
    assert init_names(manifests) == ["takeover-database", "takeover-artifacts", "migrate-database"]
    for manifest in manifests:
        if manifest["kind"] not in {"IngressRoute", "Middleware"}:
            kubernetes_validate.validate(manifest, "1.32", strict=True)
    pod = server_pod(manifests)
    for container in pod["initContainers"][:2]:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] and security["runAsNonRoot"]
        assert security["capabilities"]["drop"] == ["ALL"]
        for item in container["env"]:
            if any(word in item["name"] for word in ("PASSWORD", "ACCESS_KEY")):
                assert "secretKeyRef" in item["valueFrom"], item  # never a literal
    database = pod["initContainers"][0]
    assert database["image"].startswith("postgres:17")
    env = {e["name"]: e for e in database["env"]}
    assert env["OLD_HOST"]["value"] == "demo-mlflow-postgresql"
    assert env["OLD_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "demo-mlflow-postgresql", "key": "password"}  # fmt: skip
    volumes = {v["name"]: v for v in pod["volumes"]}
    if values is CLOUD_ON_VOLUME:
        claim = volumes["takeover-source"]["persistentVolumeClaim"]
        assert claim == {"claimName": "demo-mlflow-tracking", "readOnly": True}
        mounts = {m["name"]: m for m in pod["initContainers"][1]["volumeMounts"]}
        assert mounts["takeover-source"]["readOnly"] is True
        assert "takeover-source" not in json.dumps(pod["containers"])  # the server never mounts it
    else:
        assert "takeover-source" not in volumes
