"""Volume changes a PersistentVolumeClaim cannot take are refused before the deploy
changes anything: the first stage of the plugin reads the cluster's claims through the
real kubernetes client (a loopback API server answering recorded objects)."""

from __future__ import annotations

import json

import pytest
from _nebari.provider import opentofu
from support import k8s_api
from support import nebari as nb

from nebari_mlflow_plugin.config.stage_outputs import KUBECONFIG
from nebari_mlflow_plugin.lifecycle.volumes import planned_volumes
from nebari_mlflow_plugin.providers import provider_for
from nebari_mlflow_plugin.stages.client_stage import NotebookClientStage


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)


def pvc(name: str, size: str, storage_class: str, mode: str = "ReadWriteOnce") -> dict:
    """A claim as the API server returns it after a first deploy."""
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "dev"},
        "spec": {"accessModes": [mode], "storageClassName": storage_class,
                 "resources": {"requests": {"storage": size}}, "volumeMode": "Filesystem"},
        "status": {"phase": "Bound", "capacity": {"storage": size}},
    }  # fmt: skip


def storage_class(name: str, expandable: bool) -> dict:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name}, "provisioner": "rancher.io/local-path",
            "allowVolumeExpansion": expandable}  # fmt: skip


# What the first deploy of the defaults left on a kind cluster (StorageClass "standard").
FIRST_DEPLOY = {
    "pvc-mlflow-artifacts": pvc("mlflow-artifacts", "50Gi", "standard"),
    "pvc-mlflow-postgres-data": pvc("mlflow-postgres-data", "20Gi", "standard"),
    "storageclass-standard": storage_class("standard", expandable=False),
    "storageclass-expandable": storage_class("expandable", expandable=True),
}


def deploy_client_stage(tmp_path, mlflow: dict, objects: dict, monkeypatch):
    """Run the plugin's first stage as nebari would; returns (exit code, applied?)."""
    scenario = tmp_path / "cluster"
    scenario.mkdir()
    for name, body in objects.items():
        (scenario / f"{name}.json").write_text(json.dumps(body))
    config = nb.validate(nb.config_dict("local", mlflow))
    applied = []
    monkeypatch.setattr(opentofu, "deploy", lambda **kw: applied.append(kw) or {})
    with k8s_api.serving(scenario) as (api,):
        kubeconfig = k8s_api.write_kubeconfig(tmp_path / "kubeconfig", {"kind": api.url}, "kind")
        try:
            with NotebookClientStage(tmp_path, config).deploy(KUBECONFIG.nested(str(kubeconfig))):
                pass
        except SystemExit as exc:
            return exc.code, bool(applied)
    return 0, bool(applied)


@pytest.mark.parametrize(
    ("mlflow", "field"),
    [
        ({"artifacts": {"access_mode": "ReadWriteMany"}}, "mlflow.artifacts.access_mode"),
        ({"artifacts": {"storage_class": "nfs"}}, "mlflow.artifacts.storage_class"),
        ({"database": {"storage_class": "fast"}}, "mlflow.database.storage_class"),
        ({"database": {"size": "10Gi"}}, "mlflow.database.size"),  # shrink
        ({"database": {"size": "40Gi"}}, "mlflow.database.size"),  # class cannot expand
    ],
)
def test_changes_a_claim_cannot_take_are_refused_before_anything_is_applied(
    tmp_path, monkeypatch, capsys, mlflow, field
):
    code, applied = deploy_client_stage(tmp_path, mlflow, FIRST_DEPLOY, monkeypatch)
    output = capsys.readouterr().out
    assert code == 1 and not applied, output
    assert field in output
    # Says how to get there instead.
    assert "existing_claim" in output or "at least" in output or "back to" in output


@pytest.mark.parametrize(
    "mlflow",
    [
        {},  # the same config again
        {"artifacts": {"storage_class": "standard"}},  # naming the class it already has
        {"artifacts": {"existing_claim": "mlflow-artifacts-rwx"}},  # moved by the admin
    ],
)
def test_unchanged_or_moved_volumes_deploy(tmp_path, monkeypatch, mlflow):
    assert deploy_client_stage(tmp_path, mlflow, FIRST_DEPLOY, monkeypatch) == (0, True)


def test_growing_on_an_expandable_class_deploys(tmp_path, monkeypatch):
    expandable = pvc("mlflow-postgres-data", "20Gi", "expandable")
    objects = {**FIRST_DEPLOY, "pvc-mlflow-postgres-data": expandable}
    code, applied = deploy_client_stage(
        tmp_path,
        {"database": {"size": "40Gi", "storage_class": "expandable"}},
        objects,
        monkeypatch,
    )
    assert (code, applied) == (0, True)


def test_a_first_deploy_has_nothing_to_compare(tmp_path, monkeypatch):
    first = deploy_client_stage(tmp_path, {"database": {"size": "5Gi"}}, {}, monkeypatch)
    assert first == (0, True)


def test_planned_claims_are_the_ones_the_chart_renders(tmp_path):
    """The check compares the claims the chart really creates, per provider."""
    from support.release import find, render_release

    for provider, locals_ in (("local", None), ("aws", {
            "artifacts_destination": "s3://b/artifacts", "service_account_annotations": {},
            "pod_labels": {}, "server_env": {}})):  # fmt: skip
        config = nb.validate(nb.config_dict(provider, {}))
        manifests = render_release(nb.stage_for(config, tmp_path), nb.STAGE_OUTPUTS, locals_)
        rendered = {m["metadata"]["name"]: m for m in find(manifests, "PersistentVolumeClaim")}
        planned = planned_volumes(config.mlflow, provider_for(provider))
        assert {v.claim for v in planned} == set(rendered), provider
        for volume in planned:
            spec = rendered[volume.claim]["spec"]
            assert spec["accessModes"] == [volume.access_mode]
            assert spec["resources"]["requests"]["storage"] == volume.size
            assert spec.get("storageClassName") == volume.storage_class
