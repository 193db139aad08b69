"""Health of a deployed MLflow, read through the Kubernetes API.

`collect()` works on any `Source`; `KubernetesSource` reads a live cluster and
tests feed recorded API responses. The server itself is asked through the API
server's service proxy, so no port-forward or ingress login is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from nebari_mlflow_plugin.config import naming
from nebari_mlflow_plugin.lifecycle import health
from nebari_mlflow_plugin.lifecycle.kube_target import KubeTarget

POSTGRES_SUFFIX = "-postgres"


class Source(Protocol):
    def deployment(self, name: str) -> dict[str, Any] | None: ...
    def statefulset(self, name: str) -> dict[str, Any] | None: ...
    def pods(self, selector: str) -> list[dict[str, Any]]: ...
    def service_get(self, service: str, path: str) -> str: ...


@dataclass
class Report:
    namespace: str
    rows: list[tuple[str, bool, str]] = field(default_factory=list)
    version: str | None = None

    @property
    def healthy(self) -> bool:
        return all(ok for _, ok, _ in self.rows)

    def add(self, what: str, ok: bool, detail: str) -> None:
        self.rows.append((what, ok, detail))


def _statefulset_row(report: Report, statefulset: dict[str, Any] | None) -> None:
    if statefulset is None:
        return  # external database: nothing in the cluster to check
    wanted = statefulset.get("spec", {}).get("replicas", 1)
    ready = statefulset.get("status", {}).get("readyReplicas") or 0
    report.add("PostgreSQL StatefulSet", ready >= wanted, f"{ready}/{wanted} ready")


def deployment_problems(source: Source, namespace: str) -> tuple[dict[str, Any] | None, list[str]]:
    """(the MLflow Deployment or None, why it is not serving): shared by `collect()`
    and the stage's post-deploy check."""
    deployment = source.deployment(naming.RELEASE_NAME)
    if deployment is None:
        return None, [f"not found in namespace {namespace!r}: deployed?"]
    pods = source.pods(health.label_selector(deployment.get("spec", {}).get("selector", {})))
    return deployment, health.deployment_problems(health.Snapshot(deployment, pods))


def collect(source: Source, namespace: str, route_path: str) -> Report:
    report = Report(namespace=namespace)
    name = naming.RELEASE_NAME
    deployment, problems = deployment_problems(source, namespace)
    if deployment is None:
        report.add("MLflow Deployment", False, problems[0])
        return report
    status = deployment.get("status", {})
    ready = (
        f"{status.get('availableReplicas') or 0}/{deployment['spec'].get('replicas', 1)} available"
    )
    report.add("MLflow Deployment", not problems, "; ".join(problems) or ready)
    _statefulset_row(report, source.statefulset(name + POSTGRES_SUFFIX))

    service = f"{name}:{naming.SERVICE_PORT}"
    prefix = route_path.lstrip("/")
    try:
        answer = source.service_get(service, f"{prefix}/health").strip()
        report.add("MLflow /health", answer == "OK", answer[:200])
        report.version = source.service_get(service, f"{prefix}/version").strip()
    except Exception as exc:  # the server is down or unreachable: report, not raise
        report.add("MLflow /health", False, f"no answer through the API server: {exc}")
    return report


class KubernetesSource:
    """Reads a live cluster with the kubernetes client nebari installs."""

    def __init__(self, namespace: str, kubeconfig: str | None = None, context: str | None = None):
        from kubernetes import client

        self._api = KubeTarget(kubeconfig, context).api_client()
        self._apps = client.AppsV1Api(self._api)
        self._core = client.CoreV1Api(self._api)
        self.namespace = namespace

    def _get(self, read, name: str) -> dict[str, Any] | None:
        from kubernetes.client.rest import ApiException

        try:
            return self._api.sanitize_for_serialization(read(name, self.namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def deployment(self, name: str) -> dict[str, Any] | None:
        return self._get(self._apps.read_namespaced_deployment, name)

    def statefulset(self, name: str) -> dict[str, Any] | None:
        return self._get(self._apps.read_namespaced_stateful_set, name)

    def pods(self, selector: str) -> list[dict[str, Any]]:
        pods = self._core.list_namespaced_pod(self.namespace, label_selector=selector)
        return self._api.sanitize_for_serialization(pods)["items"]

    def service_get(self, service: str, path: str) -> str:
        return self._core.connect_get_namespaced_service_proxy_with_path(
            service, self.namespace, path, _request_timeout=10
        )

    def pvc(self, name: str) -> dict[str, Any] | None:
        return self._get(self._core.read_namespaced_persistent_volume_claim, name)

    def storage_class(self, name: str) -> dict[str, Any] | None:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        try:
            found = client.StorageV1Api(self._api).read_storage_class(name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return self._api.sanitize_for_serialization(found)
