"""The notebook package as user pods receive it (notebook_delivery.py), in the
ConfigMaps the mlflow-notebook-client stage creates (client_stage.py); the
end-to-end proof that a fresh environment runs it is tests/e2e/test_user_pod.py.
"""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import kubernetes_validate
import pytest
import tomllib
from support import nebari as nb

from nebari_mlflow_plugin.render import notebook_delivery
from nebari_mlflow_plugin.stages.client_stage import NotebookClientStage

REPO = Path(__file__).resolve().parents[2]

# ConfigMaps hold at most 1 MiB (etcd's object limit).
CONFIG_MAP_LIMIT = 1024 * 1024
# MLflow 2.x still runs on Python 3.8; its entry-point loader only forgives
# ImportError, so a SyntaxError in a delivered module would break `import mlflow`.
OLDEST_PYTHON = (3, 8)
NOTEBOOK_DIR = Path(notebook_delivery.__file__).parents[1] / "notebook"


def release_for(mlflow: dict, tmp_path=Path("unused")):
    config = nb.validate(nb.config_dict(mlflow=mlflow))
    return config, NotebookClientStage(tmp_path, config).config_map_manifests()


def config_maps(manifests: list[dict]) -> dict[str, dict]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == "ConfigMap"}


@pytest.fixture(scope="module")
def capturing():
    return release_for({"notebook": {"capture_cells": True}})


@pytest.mark.parametrize("notebook", [{}, {"capture_cells": True}])
def test_every_mount_names_a_created_valid_config_map(notebook):
    config, manifests = release_for({"notebook": notebook})
    rendered = config_maps(manifests)
    mounts = notebook_delivery.extra_mounts(config.mlflow, config.namespace)
    assert {volume["name"] for volume in mounts.values()} <= set(rendered)
    assert {volume["namespace"] for volume in mounts.values()} == {config.namespace}
    for config_map in rendered.values():
        kubernetes_validate.validate(config_map, "1.32", strict=True)
        size = sum(len(k) + len(v.encode()) for k, v in config_map["data"].items())
        assert size < CONFIG_MAP_LIMIT / 4, (config_map["metadata"]["name"], size)


def test_package_config_map_is_the_whole_notebook_package(capturing):
    _, manifests = capturing
    (package,) = [m for name, m in config_maps(manifests).items() if name.endswith("package")]
    on_disk = {p.name: p.read_text() for p in NOTEBOOK_DIR.glob("*.py")}
    assert package["data"] == on_disk
    assert "__init__.py" in package["data"]  # `notebook` is a regular package


def test_metadata_lists_the_entry_points_of_this_distribution(tmp_path):
    dist_info = tmp_path / "x.dist-info"
    dist_info.mkdir()
    for name, content in notebook_delivery.metadata_files().items():
        (dist_info / name).write_text(content)
    delivered = importlib.metadata.PathDistribution(dist_info)
    ours = importlib.metadata.distribution("nebari-mlflow-plugin")
    # pyproject.toml is the one source (an editable install's metadata may predate it).
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    mlflow_groups = {
        (group, name, value)
        for group, entries in project["entry-points"].items()
        if "mlflow" in group
        for name, value in entries.items()
    }
    # The run-context and request-auth providers are registered in pyproject.toml.
    assert {group for group, _, _ in mlflow_groups} == {
        "mlflow.run_context_provider", "mlflow.request_auth_provider"}  # fmt: skip
    assert {(e.group, e.name, e.value) for e in delivered.entry_points} == mlflow_groups
    # The name users see (README) and the version of the plugin that rendered it.
    assert delivered.metadata["Name"] == "nebari-mlflow-notebook"
    assert delivered.version == ours.version
    for entry in delivered.entry_points:
        module = entry.value.split(":")[0]
        assert module.startswith("nebari_mlflow_plugin.notebook.")
        assert (NOTEBOOK_DIR / (module.rsplit(".", 1)[1] + ".py")).is_file()


def ipython_config(manifests: list[dict]) -> str:
    (ipython,) = [m for name, m in config_maps(manifests).items() if name.endswith("ipython")]
    return ipython["data"]["ipython_kernel_config.py"]


def test_ipython_config_loads_capture_only_when_capturing(capturing):
    """Mounted only with capture; without it the ConfigMap stays, inert, so the deploy
    that turns capture off never leaves JupyterHub mounting a missing ConfigMap."""
    config, without = release_for({})
    assert not [p for p in notebook_delivery.extra_mounts(config.mlflow, config.namespace)
                if p == notebook_delivery.IPYTHON_MOUNT]  # fmt: skip
    inert = ipython_config(without)
    compile(inert, "ipython_kernel_config.py", "exec")
    assert notebook_delivery.CAPTURE_EXTENSION not in inert
    config, manifests = capturing
    assert notebook_delivery.IPYTHON_MOUNT in notebook_delivery.extra_mounts(
        config.mlflow, config.namespace
    )
    source = ipython_config(manifests)
    compile(source, "ipython_kernel_config.py", "exec")
    assert notebook_delivery.CAPTURE_EXTENSION in source


def test_no_mounts_when_the_client_is_off():
    config, _ = release_for({"notebook": {"client": False}})
    assert notebook_delivery.extra_mounts(config.mlflow, config.namespace) == {}


@pytest.mark.parametrize("path", sorted(NOTEBOOK_DIR.glob("*.py")), ids=lambda p: p.name)
def test_delivered_modules_parse_on_the_oldest_python_mlflow_supports(path):
    ast.parse(path.read_text(), filename=str(path), feature_version=OLDEST_PYTHON)
