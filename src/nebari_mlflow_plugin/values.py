"""Helm values for the chart, built from the config: the shared builder.

Terraform adds only what it alone knows (the generated password Secret, cloud
identity, the bucket URI); the admin's `overrides` are merged last.
"""

from __future__ import annotations

from typing import Any

from nebari_mlflow_plugin import naming, notebook_delivery
from nebari_mlflow_plugin.providers import Provider
from nebari_mlflow_plugin.schema import ArtifactsType, DatabaseType, MLflow, ResourceAmounts

# Pods that may reach MLflow, all in the Nebari namespace (NetworkPolicy peers).
NEBARI_CLIENT_PEERS: list[dict[str, Any]] = [
    # Traefik, which serves https://<domain>/mlflow.
    {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "traefik-ingress"}}},
    # JupyterLab user servers (z2jh labels them component=singleuser-server).
    {"podSelector": {"matchLabels": {"component": "singleuser-server"}}},
    # Argo workflow steps and scheduled notebook jobs.
    {
        "podSelector": {
            "matchExpressions": [{"key": "workflows.argoproj.io/workflow", "operator": "Exists"}]
        }
    },
    # Dask workers and schedulers started from notebooks (dask-gateway).
    {
        "podSelector": {
            "matchExpressions": [{"key": "gateway.dask.org/instance", "operator": "Exists"}]
        }
    },
    # Prometheus, scraping <route_path>/metrics.
    {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}},
]


def _amounts(amounts: ResourceAmounts) -> dict[str, str]:
    return {k: v for k, v in amounts.model_dump().items() if v is not None}


def build_values(mlflow: MLflow, provider: Provider) -> dict[str, Any]:
    """Chart values the config decides (no secrets, nothing cloud-generated)."""
    storage_class = provider.default_storage_class
    database = mlflow.database
    artifacts = mlflow.artifacts

    values: dict[str, Any] = {
        "fullnameOverride": naming.RELEASE_NAME,
        "image": {
            "repository": mlflow.image.repository,
            "tag": mlflow.image.tag,
            "pullPolicy": mlflow.image.pull_policy.value,
        },
        "replicaCount": mlflow.replicas,
        "server": {
            "staticPrefix": mlflow.route_path,
            "workers": mlflow.workers,
            "exposePrometheus": mlflow.prometheus,
        },
        "service": {"port": naming.SERVICE_PORT},
        "resources": {
            "requests": _amounts(mlflow.resources.requests),
            "limits": _amounts(mlflow.resources.limits),
        },
        "keepVolumes": not mlflow.force_destroy,
        "networkPolicy": {"enabled": True, "allowFrom": NEBARI_CLIENT_PEERS},
        "notebookClient": notebook_delivery.chart_values(mlflow),
        "gc": {
            "enabled": mlflow.gc.enabled,
            "schedule": mlflow.gc.schedule,
            "olderThan": mlflow.gc.older_than,
        },
    }

    if database.type == DatabaseType.external:
        values["database"] = {
            "mode": "external",
            "external": {
                "secretName": database.external_secret.name,
                "secretKey": database.external_secret.key,
            },
        }
    else:
        values["database"] = {
            "mode": "internal",
            "internal": {
                "image": {
                    "repository": database.image.repository,
                    "tag": database.image.tag,
                    "pullPolicy": database.image.pull_policy.value,
                },
                "persistence": {
                    "size": database.size,
                    "storageClass": database.storage_class or storage_class or "",
                },
            },
        }

    artifact_values: dict[str, Any] = {
        "persistence": {
            "size": artifacts.size,
            "storageClass": artifacts.storage_class or storage_class or "",
            "accessMode": artifacts.access_mode.value,
        }
    }
    if artifacts.type == ArtifactsType.s3:
        s3 = artifacts.s3
        prefix = s3.prefix.strip("/")
        artifact_values["destination"] = f"s3://{s3.bucket}/{prefix}".rstrip("/")
        artifact_values["s3"] = {
            "endpointUrl": s3.endpoint_url or "",
            "credentialsSecret": s3.credentials_secret,
            "ignoreTls": s3.ignore_tls,
        }
    values["artifacts"] = artifact_values
    return values
