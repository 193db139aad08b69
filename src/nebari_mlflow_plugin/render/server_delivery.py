"""The server-side package (`server/`) as the MLflow server pod receives it.

The official MLflow image cannot be extended without building our own, so the
authorization function travels as files: the chart renders `auth.package` into
the ConfigMap `mlflow-auth-package`, mounted at /opt/nebari-mlflow/server as the
top-level package `nebari_mlflow_server` (PYTHONPATH), and the auth ini names
`nebari_mlflow_server.auth:authenticate`. A distinct top-level name, so an
installed nebari-mlflow-plugin in the same environment never shadows it.

Beside it, a minimal `nebari_mlflow_server.dist-info` declares the package's
`mlflow.app` entry point, so `mlflow server --app-name nebari-auth` runs
`nebari_mlflow_server.asgi:create_app` (MLflow's basic-auth app with artifacts
streamed under the static prefix: see server/asgi.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..__about__ import __version__

_SERVER_DIR = Path(__file__).resolve().parents[1] / "server"
PACKAGE = "nebari_mlflow_server"
# `mlflow server --app-name <APP_NAME>` runs the app of server/asgi.py.
APP_NAME = "nebari-auth"
APP_ENTRY_POINT = f"{PACKAGE}.asgi:create_app"


def package_files() -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(_SERVER_DIR.glob("*.py"))}


def metadata_files() -> dict[str, str]:
    """A minimal dist-info: what importlib.metadata (MLflow's `--app-name` choices)
    needs to find the app."""
    return {
        "METADATA": (
            "Metadata-Version: 2.1\n"
            f"Name: {PACKAGE}\n"
            f"Version: {__version__}\n"
            "Summary: nebari-mlflow-plugin's server package, mounted into the MLflow server\n"
        ),
        "entry_points.txt": f"[mlflow.app]\n{APP_NAME} = {APP_ENTRY_POINT}\n",
        "top_level.txt": f"{PACKAGE}\n",
    }


def auth_values(mlflow: Any) -> dict[str, Any]:
    """The chart's `auth` values from `mlflow.auth` (the Secret comes from Terraform)."""
    auth = mlflow.auth
    values: dict[str, Any] = {"enabled": auth.enabled}
    if auth.enabled:
        values.update(
            defaultPermission=auth.default_permission.value,
            cacheSeconds=auth.cache_seconds,
            package=package_files(),
            metadata=metadata_files(),
        )
    return values


def auth_summary(mlflow: Any) -> str:
    """What `nebari mlflow render` says about authentication."""
    auth = mlflow.auth
    if not auth.enabled:
        return "OFF (mlflow.auth.enabled: false): anyone reaching the server can do anything"
    return (
        "on: JupyterHub tokens, Keycloak sessions (forward-auth), MLflow users' passwords; "
        f"default permission {auth.default_permission.value}, Nebari admins are MLflow admins, "
        f"verified identities cached {auth.cache_seconds} s"
    )
