"""The takeover's reads and its one removal in the cluster and the state.

Detection (every deploy): the old release in the OpenTofu state (first deploy);
after that, while our own release in the state still carries takeover values,
the old release's Helm record in the cluster (until `--finish` removes it,
every deploy keeps the takeover init containers, which re-verify and copy
nothing twice). A fresh deployment never asks the cluster.

Finishing: the takeover init containers' termination messages (their verified
counts) are read from the server pods; only when every one says verified is the
old release removed, through the Kubernetes API: Helm's records of it and the
objects it labelled, its volumes kept unless asked.
"""

from __future__ import annotations

import json
from typing import Any

from nebari_mlflow_plugin.config import naming
from nebari_mlflow_plugin.lifecycle import takeover
from nebari_mlflow_plugin.lifecycle.kube_target import KubeTarget
from nebari_mlflow_plugin.lifecycle.takeover import OldDeployment, TakeoverError

TAKEOVER_CONTAINERS = ("takeover-database", "takeover-artifacts")
SERVER_SELECTOR = (
    f"app.kubernetes.io/instance={naming.RELEASE_NAME},app.kubernetes.io/component=server"
)


def old_release_name(config: Any) -> str:
    """The 2025.10.x plugin's release name (`<project>-mlflow`)."""
    return f"{config.project_name}-mlflow"


def pull_state(directory: str) -> dict[str, Any]:
    """The stage's state (`tofu state pull`), {} before its first deploy."""
    from nebari_mlflow_plugin.lifecycle.adoption import run_tofu, tofu_message

    ok, out, err = run_tofu(["state", "pull"], directory)
    if not ok:
        raise TakeoverError(f"`tofu state pull` failed, nothing was applied: {tofu_message(err)}")
    text = out.strip()
    return json.loads(text) if text else {}


class Cluster:
    """The namespace, read and changed with the kubernetes client nebari installs."""

    def __init__(self, namespace: str, kubeconfig: str | None = None, context: str | None = None):
        from kubernetes import client

        self.api = KubeTarget(kubeconfig, context).api_client()
        self.core, self.apps = client.CoreV1Api(self.api), client.AppsV1Api(self.api)
        self.namespace = namespace

    def helm_records(self, release: str) -> list[dict[str, Any]]:
        """Helm's storage Secrets of a release (`sh.helm.release.v1.<release>.v<n>`)."""
        found = self.core.list_namespaced_secret(
            self.namespace, label_selector=f"owner=helm,name={release}"
        )
        return self.api.sanitize_for_serialization(found)["items"]

    def deployed_release(self, release: str) -> dict[str, Any] | None:
        records = [
            r
            for r in self.helm_records(release)
            if r["metadata"]["labels"].get("status") == "deployed"
        ]
        if not records:
            return None
        latest = max(records, key=lambda r: int(r["metadata"]["labels"].get("version", 0)))
        return takeover.decode_helm_release(latest["data"]["release"])

    def old_destination(self, release: str) -> str | None:
        """`--artifacts-destination` of the old tracking server's Deployment, if any."""
        from kubernetes.client.rest import ApiException

        try:
            found = self.apps.read_namespaced_deployment(f"{release}-tracking", self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        pod = found.spec.template.spec if found.spec and found.spec.template else None
        for container in (pod.containers if pod else None) or []:
            for arg in [*(container.command or []), *(container.args or [])]:
                if arg.startswith("--artifacts-destination="):
                    return arg.split("=", 1)[1]
        return None

    def server_pods(self) -> list[dict[str, Any]]:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=SERVER_SELECTOR)
        return self.api.sanitize_for_serialization(pods)["items"]


def cluster_for(config: Any, stage_outputs: dict[str, Any] | None = None, **target: Any) -> Cluster:
    from nebari_mlflow_plugin.lifecycle.kube_target import kube_target

    where = kube_target(config, stage_outputs, **target)
    return Cluster(config.namespace, where.kubeconfig, where.context)


def destination_problem(old: OldDeployment, cluster: Cluster) -> str | None:
    """Why the takeover would copy from the wrong place: the old server's actual
    --artifacts-destination differs from the one its values give (e.g. a Bitnami
    chart version that treated a value differently)."""
    actual = cluster.old_destination(old.release)
    expected = old.old_server_destination()
    if actual is None or actual.rstrip("/") == expected.rstrip("/"):
        return None
    return (
        f"the old server stores artifacts at {actual}, not at {expected} as its values "
        "say: this version copies only from its MinIO, a GCS bucket or its tracking "
        "volume; copy those artifacts into the new store yourself (same paths) and "
        "set the old release's values to match, or ask for support"
    )


def in_cluster(config: Any, cluster: Cluster) -> OldDeployment | None:
    record = cluster.deployed_release(old_release_name(config))
    return takeover.from_helm_release(record) if record else None


def detect(config: Any, directory: str, stage_outputs: dict[str, Any]) -> OldDeployment | None:
    """The deployment to take over on this deploy, or None; TakeoverError when the
    config would not adopt its store."""
    if not config.mlflow.enabled:
        return None
    state = pull_state(directory)
    old = takeover.from_state(state)
    if old is None and not takeover.in_progress(state):
        return None  # a fresh deployment, or a takeover finished long ago
    if old is not None and not old.release:
        problems = takeover.config_problems(config, old)  # a store only: adopt it
        if problems:
            raise TakeoverError("adopting the 2025.10.x store needs: " + "; ".join(problems))
        return old
    try:
        cluster = cluster_for(config, stage_outputs)
        old = old or in_cluster(config, cluster)  # None: --finish removed it
        where = destination_problem(old, cluster) if old else None
    except Exception as exc:  # the cluster is what stage 03 just deployed to
        raise TakeoverError(
            f"could not look for the 2025.10.x release in the cluster: {exc}"
        ) from None
    if old is None:
        return None
    problems = takeover.config_problems(config, old) + ([where] if where else [])
    if problems:
        raise TakeoverError(
            f"taking over the 2025.10.x release {old.release!r} needs: "
            + "; ".join(problems)
            + ". Nothing was applied; `nebari mlflow migrate --check -c <config>` shows the plan."
        )
    return old


def verification(pods: list[dict[str, Any]]) -> tuple[bool, list[str]]:
    """(every takeover container verified, one line per container) from the server
    pods' init container termination messages."""
    lines, ok, seen = [], True, False
    for pod in pods:
        for status in (pod.get("status") or {}).get("initContainerStatuses") or []:
            if status["name"] not in TAKEOVER_CONTAINERS:
                continue
            seen = True
            terminated = (
                (status.get("state") or {}).get("terminated")
                or (status.get("lastState") or {}).get("terminated")
                or {}
            )
            try:
                report = next(iter(json.loads(terminated.get("message") or "").values()))
            except (ValueError, StopIteration, AttributeError):
                report = {}
            verified = terminated.get("exitCode") == 0 and report.get("verified") is True
            ok = ok and verified
            detail = json.dumps({k: v for k, v in report.items() if k != "source"})
            lines.append(f"{pod['metadata']['name']}/{status['name']}: "
                         f"{'verified' if verified else 'NOT verified'} {detail}")  # fmt: skip
    if not seen:
        return False, ["no server pod ran the takeover init containers yet (deploy first)"]
    return ok, lines
