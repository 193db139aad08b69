"""The notebook package as JupyterLab user pods receive it: nothing to install.

User pods run conda-store environments the plugin cannot install into, so the
plugin ships `nebari_mlflow_plugin/notebook` in ConfigMaps (created by the
`mlflow-notebook-client` stage, before JupyterHub: see client_stage.py) and
JupyterHub mounts them through Nebari's own `custom.extra-mounts` (the only volume list Nebari's
profiles keep; z2jh's `singleuser.extraFiles` and `extraVolumes` are replaced by
the profiles' `extra_pod_config`). A ConfigMap mounts as one flat directory, so
the pod gets three mounts:

    /opt/nebari-mlflow/python/                      on PYTHONPATH
      nebari_mlflow_plugin/notebook/*.py            ConfigMap mlflow-notebook-package
      nebari_mlflow_notebook.dist-info/             ConfigMap mlflow-notebook-metadata
    /usr/local/etc/ipython/ipython_kernel_config.py ConfigMap mlflow-notebook-ipython
                                                    (mounted only with capture_cells)

`nebari_mlflow_plugin` is a namespace package there (no `__init__.py`), and the
dist-info carries the package's `mlflow.*` entry points, so MLflow in any
environment finds the run-context provider. `/usr/local/etc/ipython` is one of
IPython's system config directories that Nebari does not already mount
(`/etc/ipython` is its own ConfigMap); every kernel of every environment reads it.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from pathlib import Path
from typing import Any

from nebari_mlflow_plugin.__about__ import __version__
from nebari_mlflow_plugin.config import naming

PYTHON_DIR = "/opt/nebari-mlflow/python"
PACKAGE_MOUNT = f"{PYTHON_DIR}/nebari_mlflow_plugin/notebook"
# No version in the directory name: an upgrade changes the ConfigMap, not the
# JupyterHub config (importlib.metadata reads the version from METADATA).
METADATA_MOUNT = f"{PYTHON_DIR}/nebari_mlflow_notebook.dist-info"
IPYTHON_MOUNT = "/usr/local/etc/ipython"

DISTRIBUTION = "nebari-mlflow-notebook"
CAPTURE_EXTENSION = "nebari_mlflow_plugin.notebook.capture"
# Each ConfigMap is `mlflow-notebook-<part>`: fixed names, known at validation time.
PARTS = {"package": PACKAGE_MOUNT, "metadata": METADATA_MOUNT, "ipython": IPYTHON_MOUNT}

_NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebook"


def config_map_name(part: str) -> str:
    return f"{naming.RELEASE_NAME}-notebook-{part}"


def package_files() -> dict[str, str]:
    """The notebook package's modules, read from this installation."""
    return {path.name: path.read_text() for path in sorted(_NOTEBOOK_DIR.glob("*.py"))}


def _mlflow_entry_points() -> dict[str, dict[str, str]]:
    """This distribution's `mlflow.*` entry points, as installed (from pyproject.toml;
    `make install` reinstalls when it changes)."""
    groups: dict[str, dict[str, str]] = {}
    for entry in importlib.metadata.distribution("nebari-mlflow-plugin").entry_points:
        if entry.group.startswith("mlflow."):
            groups.setdefault(entry.group, {})[entry.name] = entry.value
    return groups


def metadata_files() -> dict[str, str]:
    """A minimal dist-info: what importlib.metadata needs to list the entry points."""
    entry_points = "".join(
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in sorted(items.items()))
        for group, items in sorted(_mlflow_entry_points().items())
    )
    return {
        "METADATA": (
            "Metadata-Version: 2.1\n"
            f"Name: {DISTRIBUTION}\n"
            f"Version: {__version__}\n"
            "Summary: nebari-mlflow-plugin's notebook package, mounted into Nebari user pods\n"
        ),
        "entry_points.txt": entry_points,
        "top_level.txt": "nebari_mlflow_plugin\n",
    }


def ipython_files(capture: bool = True) -> dict[str, str]:
    """IPython kernel config that loads the cell-capture extension in every kernel
    (with `capture` false, one that does nothing: what kernels read while JupyterHub
    still mounts it during the deploy that turns capture off)."""
    if not capture:
        return {
            "ipython_kernel_config.py": (
                "# nebari-mlflow-plugin: mlflow.notebook.capture_cells is off.\n"
            )
        }
    return {
        "ipython_kernel_config.py": (
            "# nebari-mlflow-plugin (mlflow.notebook.capture_cells): record every cell of\n"
            "# every kernel as an MLflow run. NEBARI_MLFLOW_CAPTURE=0 in a kernel's\n"
            "# environment makes the extension inert; without mlflow it does nothing.\n"
            f"c.InteractiveShellApp.extensions.append({CAPTURE_EXTENSION!r})\n"
        )
    }


def delivered(mlflow: Any) -> bool:
    return bool(mlflow.enabled and mlflow.inject_env and mlflow.notebook.client)


def capturing(mlflow: Any) -> bool:
    return delivered(mlflow) and mlflow.notebook.capture_cells


def config_maps(mlflow: Any) -> dict[str, dict[str, str]]:
    """ConfigMap name -> files: what the mlflow-notebook-client stage creates. All
    three, whatever is mounted, so switching capture on or off never leaves a
    mount without its ConfigMap."""
    files = {
        "package": package_files(),
        "metadata": metadata_files(),
        "ipython": ipython_files(capture=capturing(mlflow)),
    }
    return {config_map_name(part): content for part, content in files.items()}


def extra_mounts(mlflow: Any, namespace: str) -> dict[str, dict[str, str]]:
    """Entries for JupyterHub's `custom.extra-mounts` (mount path -> ConfigMap)."""
    if not delivered(mlflow):
        return {}
    parts = ["package", "metadata"] + (["ipython"] if capturing(mlflow) else [])
    return {
        PARTS[part]: {"name": config_map_name(part), "namespace": namespace, "kind": "configmap"}
        for part in parts
    }


def spawner_literal(value: str) -> str:
    """Escape a value for KubeSpawner, which runs `str.format` on every env value
    to expand {username} and friends: a regex's `{20,}` would fail the spawn."""
    return value.replace("{", "{{").replace("}", "}}")


def readable_user(template: str) -> str:
    """`{username}` as people read it. KubeSpawner expands `{username}` to its escaped
    slug (`alice@example.com` becomes `alice-40example-2ecom`, or a hashed safe name in
    KubeSpawner 7) and `{unescaped_username}` to the JupyterHub name: an experiment is
    named for the person, so the config's `{username}` means the latter."""
    return re.sub(r"(?<!{){username}(?!})", "{unescaped_username}", template)


def pod_env(mlflow: Any) -> dict[str, str]:
    """Environment the delivered package needs (PYTHONPATH) and capture settings."""
    if not delivered(mlflow):
        return {}
    env = {"PYTHONPATH": PYTHON_DIR}
    if capturing(mlflow):
        notebook = mlflow.notebook
        env["NEBARI_MLFLOW_CAPTURE"] = "1"
        if notebook.capture_experiment:
            env["NEBARI_MLFLOW_CAPTURE_EXPERIMENT"] = readable_user(notebook.capture_experiment)
        if notebook.capture_redact:
            env["NEBARI_MLFLOW_CAPTURE_REDACT"] = spawner_literal(
                json.dumps(notebook.capture_redact)
            )
    return env
