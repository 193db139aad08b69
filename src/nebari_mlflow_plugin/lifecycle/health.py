"""Judge a deployed MLflow from Kubernetes API objects (plain dicts).

Pure functions over what the API returned, so the stage's `check()` and any
status command share them and tests can feed recorded responses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Waiting reasons that never resolve on their own, with what to do about them.
WAITING_ADVICE = {
    "ImagePullBackOff": "the image cannot be pulled: check mlflow.image (repository/tag) "
    "and that the cluster can reach the registry",
    "ErrImagePull": "the image cannot be pulled: check mlflow.image (repository/tag)",
    "InvalidImageName": "mlflow.image is not a valid image reference",
    "CrashLoopBackOff": "it keeps exiting: read its log with "
    "`kubectl logs -n {namespace} {pod} -c {container} --previous` (for migrate-database: "
    "the database is unreachable or its schema could not be upgraded; for mlflow: "
    "database or artifact store permissions are the usual causes)",
    "CreateContainerConfigError": "a referenced Secret or key is missing: check "
    "mlflow.database.external_secret / mlflow.artifacts.s3.credentials_secret; key "
    "hub.services.mlflow.apiToken of Secret hub (the MLflow service's JupyterHub token) is "
    "written by JupyterHub's stage: run `nebari deploy` again",
}
# Reasons whose own message (from the kubelet) names what is wrong, e.g. the Secret key.
SHOW_MESSAGE = {"CreateContainerConfigError"}


@dataclass
class Snapshot:
    deployment: dict[str, Any]
    pods: list[dict[str, Any]] = field(default_factory=list)


def label_selector(selector: Any) -> str:
    """`a=b,c=d` from a V1LabelSelector or its dict form."""
    labels = getattr(selector, "match_labels", None)
    if labels is None and isinstance(selector, dict):
        labels = selector.get("matchLabels")
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))


def _pod_problems(pod: dict[str, Any]) -> list[str]:
    name = pod.get("metadata", {}).get("name", "?")
    namespace = pod.get("metadata", {}).get("namespace", "?")
    status = pod.get("status", {})
    problems = []
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            problems.append(
                f"pod {name} cannot be scheduled: {condition.get('message', '')} "
                "(an unbound volume means the storage class in mlflow.database.storage_class / "
                "mlflow.artifacts.storage_class does not exist or cannot provision)"
            )
    statuses = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    for container in statuses:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in WAITING_ADVICE:
            advice = WAITING_ADVICE[reason].format(
                namespace=namespace, pod=name, container=container.get("name")
            )
            said = (
                f" ({waiting['message']})"
                if reason in SHOW_MESSAGE and waiting.get("message")
                else ""
            )
            problems.append(
                f"pod {name} container {container.get('name')}: {reason}{said}: {advice}"
            )
    return problems


def deployment_problems(snapshot: Snapshot) -> list[str]:
    """Why the MLflow Deployment is not serving; empty when it is."""
    deployment = snapshot.deployment
    spec, status = deployment.get("spec", {}), deployment.get("status", {})
    wanted = spec.get("replicas", 1)
    available = status.get("availableReplicas") or 0
    generation_seen = status.get("observedGeneration", 0) >= deployment.get("metadata", {}).get(
        "generation", 0
    )
    updated = status.get("updatedReplicas") or 0
    if available >= wanted and generation_seen and updated >= wanted:
        return []
    problems = [p for pod in snapshot.pods for p in _pod_problems(pod)]
    if not problems:
        problems.append(
            f"{available}/{wanted} replicas available, {updated} updated; still starting "
            "(the first start runs database migrations)"
        )
    return problems
