"""What the authorization function reads from the server container's environment
(set by the chart: see helm/mlflow/templates/_auth.tpl)."""

from __future__ import annotations

import os
from dataclasses import dataclass

# Names of the variables, shared with the chart (and its tests).
HUB_API = "NEBARI_MLFLOW_HUB_API"
HUB_TOKEN = "NEBARI_MLFLOW_HUB_TOKEN"
CACHE_SECONDS = "NEBARI_MLFLOW_AUTH_CACHE_SECONDS"
# MLflow's service name in JupyterHub: a token is for MLflow with access:services!service=<it>.
HUB_SERVICE = "NEBARI_MLFLOW_HUB_SERVICE"
# Key of the shared identity store's hashes (the Flask secret of MLflow's auth app).
SECRET_KEY = "MLFLOW_FLASK_SERVER_SECRET_KEY"
# MLflow's own variable: the built-in admin (break-glass credential, never a person).
ADMIN_USERNAME = "MLFLOW_AUTH_ADMIN_USERNAME"


@dataclass(frozen=True)
class Settings:
    hub_api: str
    hub_token: str
    cache_seconds: float
    admin_username: str
    hub_service: str = "MLflow"
    secret_key: str = ""
    # Upstream calls (the hub): a slow hub must not hold a worker long.
    timeout: float = 5.0
    cache_size: int = 10000

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            hub_api=env.get(HUB_API, "").rstrip("/"),
            hub_token=env.get(HUB_TOKEN, ""),
            cache_seconds=float(env.get(CACHE_SECONDS, "60")),
            admin_username=env.get(ADMIN_USERNAME, ""),
            hub_service=env.get(HUB_SERVICE) or "MLflow",
            secret_key=env.get(SECRET_KEY, ""),
        )
