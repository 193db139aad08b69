"""The server-side package (`server/`) as the MLflow server pod and its Jobs receive it.

The official MLflow image cannot be extended without building our own, so the
authorization function and the jobs the chart runs (schema migration, auth config,
backups, restores, takeover copy, gc) travel as files: the chart renders
`serverPackage` into the ConfigMap `mlflow-server-package`, mounted at
/opt/nebari-mlflow/server as the top-level package `nebari_mlflow_server`
(PYTHONPATH); the auth ini names `nebari_mlflow_server.auth:authenticate` and the
containers run `python3 -m nebari_mlflow_server.<job>`. A distinct top-level name,
so an installed nebari-mlflow-plugin in the same environment never shadows it.

Beside it, a minimal `nebari_mlflow_server.dist-info` (`serverPackageMetadata`, in
the same ConfigMap) declares the package's `mlflow.app` entry point, so
`mlflow server --app-name nebari-auth` runs `nebari_mlflow_server.asgi:create_app`
(MLflow's basic-auth app with artifacts streamed under the static prefix: see
server/asgi.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nebari_mlflow_plugin.__about__ import __version__
from nebari_mlflow_plugin.config.hub_access import HUB_SERVICE_NAME

_SERVER_DIR = Path(__file__).resolve().parents[1] / "server"
PACKAGE = "nebari_mlflow_server"
# `mlflow server --app-name <APP_NAME>` runs the app of server/asgi.py.
APP_NAME = "nebari-auth"
APP_ENTRY_POINT = f"{PACKAGE}.asgi:create_app"


def package_files() -> dict[str, str]:
    """The chart's `serverPackage`: every module of `server/`, by file name."""
    return {path.name: path.read_text() for path in sorted(_SERVER_DIR.glob("*.py"))}


def metadata_files() -> dict[str, str]:
    """The chart's `serverPackageMetadata`, a minimal dist-info: what importlib.metadata
    (MLflow's `--app-name` choices) needs to find the app."""
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
        from nebari_mlflow_plugin.render import injection

        values.update(
            defaultPermission=auth.default_permission.value,
            cacheSeconds=auth.cache_seconds,
            hub={"serviceName": HUB_SERVICE_NAME},
            # Browsers sign in as clients of the hub service injection.py registers
            # (the hub's authorize URL, on the domain, comes from Terraform).
            login={
                "clientId": injection.OAUTH_CLIENT_ID,
                "redirectUri": injection.oauth_redirect_uri(mlflow),
            },
        )
    return values


def auth_summary(mlflow: Any) -> str:
    """What `nebari mlflow render` says about authentication."""
    auth = mlflow.auth
    if not auth.enabled:
        return "OFF (mlflow.auth.enabled: false): anyone reaching the server can do anything"
    return (
        "on: JupyterHub tokens, browser sessions (signed in through JupyterHub), MLflow "
        "users' passwords; "
        f"default permission {auth.default_permission.value}, Nebari admins are MLflow admins, "
        f"verified identities cached {auth.cache_seconds} s"
    )
