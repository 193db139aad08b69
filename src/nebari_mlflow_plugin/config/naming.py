"""Names and URLs every layer agrees on.

The Helm release, its Service and the in-cluster tracking URI must be known at
config-validation time (JupyterHub is configured before this stage deploys), so
they derive from the config alone, never from Terraform outputs.
"""

from __future__ import annotations

RELEASE_NAME = "mlflow"
# The chart's in-cluster PostgreSQL (its StatefulSet) and the claim holding its data.
POSTGRES_NAME = f"{RELEASE_NAME}-postgres"
POSTGRES_CLAIM = f"{POSTGRES_NAME}-data"
SERVICE_PORT = 5000
STAGE_NAME = "mlflow"
# Creates the user-pod ConfigMaps before stage 07 configures JupyterHub to mount them.
CLIENT_STAGE_NAME = "mlflow-notebook-client"


def internal_tracking_uri(namespace: str, route_path: str) -> str:
    """URL user pods and workflows use: the Service, bypassing ingress and login."""
    return f"http://{RELEASE_NAME}.{namespace}.svc:{SERVICE_PORT}{route_path}"


def public_url(domain: str, route_path: str) -> str:
    """URL people browse, behind Nebari's Keycloak forward-auth."""
    return f"https://{domain}{route_path}/"
