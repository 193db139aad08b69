"""Helm values for the chart, built from the config: the shared builder.

Terraform adds only what it alone knows (the generated password Secret, cloud
identity, the bucket URI); the admin's `overrides` are merged last.
"""

from __future__ import annotations

from typing import Any

from nebari_mlflow_plugin import versions
from nebari_mlflow_plugin.assets import chart_digest
from nebari_mlflow_plugin.config import naming, pod_hosts
from nebari_mlflow_plugin.config.schema import ArtifactsType, DatabaseType, MLflow
from nebari_mlflow_plugin.config.sizing import server_resources
from nebari_mlflow_plugin.providers import Provider
from nebari_mlflow_plugin.render import server_delivery

# kube-prometheus-stack's Prometheus pods (the operator labels them
# app.kubernetes.io/name=prometheus), in the Nebari namespace like MLflow.
PROMETHEUS_PEER: dict[str, Any] = {
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}
}
# The label Nebari's Prometheus selects ServiceMonitors and PrometheusRules by:
# kube-prometheus-stack's default selector is `release: <its Helm release>`, and
# Nebari installs it as the release `nebari` (monitoring.enabled).
NEBARI_PROMETHEUS_LABELS = {"release": "nebari"}

# Pods that may reach MLflow, all in the Nebari namespace (NetworkPolicy peers), by
# what they are (named in `nebari validate`'s refusal of an override dropping one).
NEBARI_CLIENTS: dict[str, dict[str, Any]] = {
    # Traefik, which serves https://<domain>/mlflow.
    "Traefik": {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "traefik-ingress"}}},
    # JupyterLab user servers (z2jh labels them component=singleuser-server).
    "user pods": {"podSelector": {"matchLabels": {"component": "singleuser-server"}}},
    # Argo workflow steps and scheduled notebook jobs.
    "Argo workflows": {
        "podSelector": {
            "matchExpressions": [{"key": "workflows.argoproj.io/workflow", "operator": "Exists"}]
        }
    },
    # Dask workers and schedulers started from notebooks (dask-gateway).
    "Dask workers": {
        "podSelector": {
            "matchExpressions": [{"key": "gateway.dask.org/instance", "operator": "Exists"}]
        }
    },
    # Prometheus, scraping /metrics (served at the server's root, not under route_path).
    "Prometheus": PROMETHEUS_PEER,
}
NEBARI_CLIENT_PEERS: list[dict[str, Any]] = list(NEBARI_CLIENTS.values())


def monitoring_values(mlflow: MLflow, nebari_monitoring: bool) -> dict[str, Any]:
    """The chart's monitoring add-on: on when Nebari deploys its Prometheus and Grafana
    (`monitoring.enabled`, whose stage installs the Prometheus Operator CRDs before
    ours) and MLflow serves metrics (`mlflow.prometheus`); off, nothing CRD-based is
    rendered."""
    return {
        "enabled": nebari_monitoring and mlflow.prometheus,
        "labels": NEBARI_PROMETHEUS_LABELS,
        "prometheusPeers": [PROMETHEUS_PEER],
        "postgresExporter": {
            "image": {
                "repository": versions.POSTGRES_EXPORTER_IMAGE,
                "tag": versions.POSTGRES_EXPORTER_IMAGE_TAG,
            }
        },
    }


def build_values(
    mlflow: MLflow,
    provider: Provider,
    node_selector: dict[str, str] | None = None,
    nebari_monitoring: bool = False,
) -> dict[str, Any]:
    """Chart values the config decides (no secrets, nothing cloud-generated);
    `node_selector` (scheduling.node_selector) goes to every pod of the chart,
    `nebari_monitoring` is Nebari's own `monitoring.enabled`."""
    storage_class = provider.default_storage_class
    database = mlflow.database
    artifacts = mlflow.artifacts

    values: dict[str, Any] = {
        "fullnameOverride": naming.RELEASE_NAME,
        # A template-only change of the chart must still upgrade the release.
        "chartDigest": chart_digest(),
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
            "aiGateway": mlflow.ai_gateway,
            "podNetworkHosts": pod_hosts.host_patterns(mlflow.allowed_hosts_extra),
            # Server-side jobs stay off: they run GenAI judges with stored keys on the
            # server, and MLflow 3.17's job runner cannot reach a server behind a prefix.
            "jobExecution": False,
        },
        "service": {"port": naming.SERVICE_PORT},
        "resources": server_resources(mlflow.resources, mlflow.workers),
        "nodeSelector": node_selector or {},
        "keepVolumes": not mlflow.force_destroy,
        "networkPolicy": {"enabled": True, "allowFrom": NEBARI_CLIENT_PEERS},
        "monitoring": monitoring_values(mlflow, nebari_monitoring),
        "auth": server_delivery.auth_values(mlflow),
        "serverPackage": server_delivery.package_files(),
        "serverPackageMetadata": server_delivery.metadata_files(),
        "gc": {
            "enabled": mlflow.gc.enabled,
            "schedule": mlflow.gc.schedule,
            "olderThan": mlflow.gc.older_than,
        },
        "backup": {
            "enabled": mlflow.backup.enabled,
            "schedule": mlflow.backup.schedule,
            "keep": mlflow.backup.keep,
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
                    "existingClaim": database.existing_claim or "",
                },
            },
        }

    artifact_values: dict[str, Any] = {
        "persistence": {
            "size": artifacts.size,
            "storageClass": artifacts.storage_class or storage_class or "",
            "accessMode": artifacts.access_mode.value,
            "existingClaim": artifacts.existing_claim or "",
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
