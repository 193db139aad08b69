"""Who holds the JupyterHub scope MLflow requires, and how they get it on Nebari 2025.10.

MLflow's server accepts a JupyterHub token only if it is meant for MLflow
(`access:services!service=MLflow`, `access:services`, or its owner's own server's
token: server/scopes.py). Nebari's KeyCloakOAuthenticator manages users' JupyterHub
roles (`manage_roles`): they are the client roles of Keycloak's `jupyterhub` client
whose attributes say `component: jupyterhub` and list `scopes` (comma-separated),
assigned to Keycloak groups; JupyterHub loads them at start (per group) and at each
login (per user). So the `mlflow` stage creates one such role and maps it to
`mlflow.auth.hub_access_groups`, as Nebari's stage 07 does for
`allow-read-access-to-services-role`. A pod's token carries the scope through
`Spawner.server_token_scopes` (JupyterHub grants the subset the user holds).
"""

from __future__ import annotations

from typing import Any

# Key of MLflow's entry in hub.services, and its name (shown in the menu; in scopes).
HUB_SERVICE_KEY = "mlflow"
HUB_SERVICE_NAME = "MLflow"

ACCESS_ROLE_NAME = "allow-access-to-mlflow-role"
ACCESS_ROLE_DESCRIPTION = "Use MLflow with JupyterHub tokens (nebari-mlflow-plugin)"


def access_scope(service: str = HUB_SERVICE_NAME) -> str:
    return f"access:services!service={service}"


def server_token_scopes(service: str = HUB_SERVICE_NAME) -> list[str]:
    """`Spawner.server_token_scopes` with MLflow: JupyterHub's default `server` role
    (report activity, be reached as itself), MLflow's access scope, and `tokens!user`
    so the pod can mint its user's workflow tokens (docs/admin/auth.md#credentials)."""
    return ["users:activity!user", "access:servers!server", access_scope(service), "tokens!user"]


def keycloak_role(mlflow: Any) -> dict[str, Any]:
    """The Keycloak client role on `jupyterhub` the stage creates (Terraform variable
    `hub_access_role`), in the shape Nebari's authenticator reads."""
    return {
        "name": ACCESS_ROLE_NAME,
        "description": ACCESS_ROLE_DESCRIPTION,
        "attributes": {"scopes": access_scope(), "component": "jupyterhub"},
        "groups": list(mlflow.auth.hub_access_groups),
    }
