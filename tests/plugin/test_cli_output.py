"""What `nebari mlflow render` and `status` print is what a deploy does, verbatim.

Through nebari's CLI app (typer's CliRunner) on real config files."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from _nebari.cli import create_cli
from support import nebari as nb
from support.k8s import RECORDED
from support.k8s_api import serving, write_kubeconfig
from typer.testing import CliRunner

WIDE = {"COLUMNS": "300"}  # no folding: assertions read whole cells


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)


def run(*args: str):
    result = CliRunner().invoke(create_cli(), list(args), env=WIDE, catch_exceptions=False)
    return result.exit_code, result.output


def _config_file(tmp_path, data: dict):
    path = tmp_path / "nebari-config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _artifacts_row(output: str) -> str:
    (line,) = [line for line in output.splitlines() if "│ artifacts " in line]
    return line


def _render(tmp_path, data: dict):
    out = tmp_path / "preview"
    code, output = run("mlflow", "render", "-c", str(_config_file(tmp_path, data)), "-o", str(out))
    assert code == 0, output
    tfvars = json.loads((out / "stages/mlflow/preview.tfvars.json").read_text())
    kinds = {p.name for p in (out / "manifests").glob("*.yaml")}
    return output, tfvars, kinds


# What Terraform creates, by the variables the stage hands it (preview.tfvars.json).
CLOUD_STORE = {
    "aws": lambda v: f"s3://{v['bucket_name']}/",
    "gcp": lambda v: f"gs://{v['bucket_name']}/",
    "azure": lambda v: f"wasbs://{v['container_name']}@{v['storage_account_name']}.",
}


@pytest.mark.parametrize("provider", sorted(CLOUD_STORE))
def test_cloud_render_shows_the_bucket_and_no_artifact_volume(tmp_path, provider):
    output, tfvars, manifests = _render(tmp_path, nb.config_dict(provider, {}))
    row = _artifacts_row(output)
    assert CLOUD_STORE[provider](tfvars) in row
    assert "volume" not in row
    # The database has its claim; the artifacts have none.
    assert not any(name.startswith("persistentvolumeclaim-mlflow-artifacts") for name in manifests)
    assert any(name.startswith("persistentvolumeclaim-mlflow-postgres") for name in manifests)
    values = yaml.safe_load((tmp_path / "preview" / "values.yaml").read_text())
    assert values["artifacts"]["destination"].startswith(CLOUD_STORE[provider](tfvars))


def test_local_render_still_shows_the_volume(tmp_path):
    output, _, manifests = _render(tmp_path, nb.config_dict("local", {}))
    assert "volume of 50Gi" in _artifacts_row(output)
    assert "persistentvolumeclaim-mlflow-artifacts.yaml" in manifests


def test_render_prints_bracketed_values_literally(tmp_path):
    experiment = "team[dev/mlflow]/[/mlflow]{servername}"
    output, _, _ = _render(tmp_path, nb.config_dict("local", {"user_experiment": experiment}))
    assert f"MLFLOW_EXPERIMENT_NAME={experiment}" in output


def test_status_prints_cluster_answers_literally(tmp_path):
    scenario = tmp_path / "k8s"
    shutil.copytree(RECORDED / "healthy", scenario)
    # An API-server proxy answer that is not MLflow's: shown as it came.
    answer = "upstream error [dev/mlflow] [/mlflow]"
    (scenario / "proxy.json").write_text(json.dumps({"health": answer, "version": "3.17.2"}))
    with serving("healthy") as (api,):
        api.dir = scenario
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {"c": api.url}, current="c")
        config = _config_file(tmp_path, nb.config_dict("local", {}))
        code, output = run("mlflow", "status", "-c", str(config), "--kubeconfig", str(kubeconfig))
    assert code == 1, output
    assert answer in output
