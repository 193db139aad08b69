"""Backups and restores as Kubernetes Jobs from the chart's templates.

The work happens in the cluster, in pods the chart describes (the CronJobs
`mlflow-backup` and `mlflow-restore`): only they hold the cloud identity and reach the
database. This creates Jobs from those templates through the Kubernetes API (the
cluster `kube_target` names), waits a bounded time and reads each Job's last JSON line
from its pod's log. Used by `nebari mlflow backup|backups|restore` (cli/backups.py) and
by the stage's destroy (final_backup.py).
"""

from __future__ import annotations

import copy
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from nebari_mlflow_plugin.config import naming
from nebari_mlflow_plugin.lifecycle.kube_target import KubeTarget

BACKUP_TEMPLATE = f"{naming.RELEASE_NAME}-backup"
RESTORE_TEMPLATE = f"{naming.RELEASE_NAME}-restore"
# The MLflow-image container of each template: backup_store's actions run in it.
STORE_CONTAINER = {BACKUP_TEMPLATE: "upload", RESTORE_TEMPLATE: "fetch"}
STARTED_BY = {"app.kubernetes.io/managed-by": "nebari-mlflow-plugin"}


# What a failure of each container of the restore pod leaves behind.
RESTORE_STATES = {
    "fetch": "the database is unchanged (nothing was restored)",
    "restore": "its single transaction was rolled back: the database is unchanged",
    "verify": "the backup WAS restored, but the database does not hold what its manifest lists",
}


class BackupError(Exception):
    """A failure the admin must read: one message, no traceback."""


class Cluster:
    """The Kubernetes calls of these commands (the client nebari installs)."""

    def __init__(self, namespace: str, kubeconfig: str | None, context: str | None):
        from kubernetes import client

        self._api = KubeTarget(kubeconfig, context).api_client()
        self._batch = client.BatchV1Api(self._api)
        self._apps = client.AppsV1Api(self._api)
        self._core = client.CoreV1Api(self._api)
        self.namespace = namespace

    def _plain(self, obj: Any) -> Any:
        return self._api.sanitize_for_serialization(obj)

    def _read(self, read: Callable[[str, str], Any], name: str) -> dict | None:
        """The object `read` returns, None when the API answers 404."""
        from kubernetes.client.rest import ApiException

        try:
            return self._plain(read(name, self.namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def cronjob(self, name: str) -> dict | None:
        return self._read(self._batch.read_namespaced_cron_job, name)

    def create_job(self, body: dict) -> None:
        self._batch.create_namespaced_job(self.namespace, body)

    def job(self, name: str) -> dict:
        return self._plain(self._batch.read_namespaced_job(name, self.namespace))

    def delete_job(self, name: str) -> None:
        self._batch.delete_namespaced_job(name, self.namespace, propagation_policy="Background")

    def pods(self, selector: str) -> list[dict]:
        found = self._core.list_namespaced_pod(self.namespace, label_selector=selector)
        return self._plain(found)["items"]

    def log(self, pod: str, container: str) -> str:
        # Raw bytes: the client would parse a log that is one JSON line and return its repr.
        response = self._core.read_namespaced_pod_log(
            pod, self.namespace, container=container, _preload_content=False
        )
        return response.data.decode("utf-8", "replace")

    def deployment(self, name: str) -> dict | None:
        return self._read(self._apps.read_namespaced_deployment, name)

    def statefulset(self, name: str) -> dict | None:
        return self._read(self._apps.read_namespaced_stateful_set, name)

    def pvc(self, name: str) -> dict | None:
        return self._read(self._core.read_namespaced_persistent_volume_claim, name)

    def scale(self, name: str, replicas: int) -> None:
        self._apps.patch_namespaced_deployment_scale(
            name, self.namespace, {"spec": {"replicas": replicas}}
        )


@dataclass
class JobFailed(Exception):
    job: str
    container: str | None
    message: str


@dataclass
class Runner:
    """Creates Jobs from templates and waits for them; `poll` seconds between looks."""

    cluster: Cluster
    timeout: float = 3600
    poll: float = 1.0
    sleep: Callable[[float], None] = time.sleep

    def template(self, name: str) -> dict:
        found = self.cluster.cronjob(name)
        if found is None:
            raise BackupError(
                f"no CronJob {name} in namespace {self.cluster.namespace}: is MLflow deployed "
                "there with this plugin's version?"
            )
        return found

    def job_from(self, cronjob: dict, purpose: str) -> dict:
        """A Job of the CronJob's jobTemplate, as `kubectl create job --from=cronjob/...`."""
        spec = copy.deepcopy(cronjob["spec"]["jobTemplate"]["spec"])
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
        labels = {**(cronjob["spec"]["jobTemplate"].get("metadata") or {}).get("labels", {}),
                  **STARTED_BY}  # fmt: skip
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": f"{naming.RELEASE_NAME}-{purpose}-{stamp}-{secrets.token_hex(2)}",
                "namespace": self.cluster.namespace,
                "labels": labels,
                "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
            },
            "spec": spec,
        }

    def run(self, job: dict, container: str) -> dict:
        """Create `job`, wait for it, return the last JSON line `container` printed.
        Successful Jobs are deleted; failed ones stay for `kubectl logs`."""
        name = job["metadata"]["name"]
        self.cluster.create_job(job)
        deadline = time.monotonic() + self.timeout
        while True:
            status = self.cluster.job(name).get("status") or {}
            if status.get("succeeded"):
                break
            failed = [c for c in status.get("conditions") or []
                      if c.get("type") == "Failed" and c.get("status") == "True"]  # fmt: skip
            if failed:
                raise self._failure(name, failed[0].get("message") or failed[0].get("reason"))
            if time.monotonic() > deadline:
                raise JobFailed(name, None, f"not finished after {self.timeout:.0f} s (it goes on)")
            self.sleep(self.poll)
        output = self.cluster.log(self._pod(name)["metadata"]["name"], container)
        self.cluster.delete_job(name)
        return last_json(output, name)

    def _pod(self, job: str) -> dict:
        pods = self.cluster.pods(f"job-name={job}")
        if not pods:
            raise JobFailed(job, None, "its pod is gone")
        return max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")

    def _failure(self, job: str, reason: str | None) -> JobFailed:
        """Which container failed and its last line (what the script says)."""
        try:
            pod = self._pod(job)
        except JobFailed:
            return JobFailed(job, None, reason or "failed")
        status = pod.get("status") or {}
        for state in (status.get("initContainerStatuses") or []) + (
            status.get("containerStatuses") or []
        ):
            terminated = (state.get("state") or {}).get("terminated") or {}
            if terminated.get("exitCode"):
                lines = self.cluster.log(pod["metadata"]["name"], state["name"]).strip()
                last = lines.splitlines()[-1] if lines else f"exit code {terminated['exitCode']}"
                return JobFailed(job, state["name"], last)
        return JobFailed(job, None, reason or "failed")


def last_json(output: str, job: str) -> dict:
    for line in reversed(output.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise JobFailed(job, None, "finished without reporting a result")


def with_action(job: dict, container: str, args: list[str], env: dict[str, str] | None = None,
                only: bool = False) -> dict:  # fmt: skip
    """Point `container` of the Job at backup_store's `args`; `only`: run just it."""
    pod = job["spec"]["template"]["spec"]
    everything = (pod.get("initContainers") or []) + pod["containers"]
    (target,) = [c for c in everything if c["name"] == container]
    target["args"] = args
    for name, value in (env or {}).items():
        target["env"] = [e for e in target.get("env") or [] if e["name"] != name]
        target["env"].append({"name": name, "value": value})
    if only:
        pod["initContainers"], pod["containers"] = [], [target]
    return job


def without_affinity(job: dict) -> dict:
    """The templates follow the server onto its node (a ReadWriteOnce artifact volume is
    attached there); with the server at zero there is no node to follow."""
    job["spec"]["template"]["spec"].pop("affinity", None)
    return job


class Backups:
    """The three commands' logic, on a Runner."""

    def __init__(self, runner: Runner, config: Any):
        self.runner, self.config = runner, config
        self.cluster = runner.cluster
        self.pre_restored: dict | None = None  # the pre-restore backup of the last restore

    def _server(self) -> dict:
        found = self.cluster.deployment(naming.RELEASE_NAME)
        if found is None:
            raise BackupError(
                f"no Deployment {naming.RELEASE_NAME} in namespace {self.cluster.namespace}"
            )
        return found

    def backup(self, kind: str = "on-demand") -> dict:
        """Take a backup now (the scheduled one's pod, kind on-demand unless said)."""
        if self.external():
            raise BackupError(
                "mlflow.database.type is external: its backups are the database provider's "
                "(docs/admin/backups.md#external-databases); `nebari mlflow restore` "
                "restores into it"
            )
        if not self.config.mlflow.backup.enabled:
            raise BackupError("mlflow.backup.enabled is false: no backup Job is deployed")
        job = self.runner.job_from(self.runner.template(BACKUP_TEMPLATE), "backup")
        with_action(job, "upload", ["upload"], {"MLFLOW_BACKUP_KIND": kind})
        return self._run(job, "upload")

    def fetch(self, name: str) -> dict:
        """Read backup `name` back from the store in the cluster: its dump is downloaded
        and checked against its manifest's sha256 (nothing else changes)."""
        job = self.runner.job_from(self.runner.template(RESTORE_TEMPLATE), "fetch")
        with_action(job, "fetch", ["fetch", name], only=True)
        return self._run(job, "fetch")

    def list(self) -> dict:
        """{root, backups: [...]} newest first, read in the cluster."""
        name = BACKUP_TEMPLATE if self.cluster.cronjob(BACKUP_TEMPLATE) else RESTORE_TEMPLATE
        container = STORE_CONTAINER[name]
        job = self.runner.job_from(self.runner.template(name), "list")
        with_action(job, container, ["list"], only=True)
        if not self._server()["spec"].get("replicas"):
            without_affinity(job)
        return self._run(job, container)

    def plan_restore(self, name: str | None) -> dict:
        """What a restore would do, read in the cluster by the restore template's fetch
        container: {root, current: the database's row counts, chosen: the backup (the
        one named, else the newest holding rows the database lacks) or None, backups}."""
        job = self.runner.job_from(self.runner.template(RESTORE_TEMPLATE), "plan")
        with_action(job, "fetch", ["plan-restore", *([name] if name else [])], only=True)
        if not self._server()["spec"].get("replicas"):
            without_affinity(job)
        return self._run(job, "fetch")

    def external(self) -> bool:
        database = self.config.mlflow.database
        return getattr(database.type, "value", database.type) == "external"

    def check_undo(self, without_undo: bool) -> None:
        """A restore replaces the whole database; into an external one (which the chart
        does not back up: no pre-restore backup) only when the admin says they have
        another undo, before anything is read or changed."""
        if self.external() and not without_undo:
            raise BackupError(
                "mlflow.database.type is external: the plugin does not back it up, so no "
                "pre-restore backup would be written and this restore could not be undone "
                "with `nebari mlflow restore`. Take a snapshot with the database's provider "
                "first, then run again with --without-pre-restore-backup "
                "(docs/admin/backups.md#external-databases); nothing was changed"
            )

    def pre_restore_backup(self) -> dict | None:
        """A backup (kind pre-restore) of what the restore replaces, with the server
        stopped (nothing written after it); None for an external database (its
        provider's snapshots are the undo: the chart has no backup Job for it)."""
        if self.external():
            return None
        job = self.runner.job_from(self.runner.template(BACKUP_TEMPLATE), "pre-restore")
        with_action(job, "upload", ["upload"], {"MLFLOW_BACKUP_KIND": "pre-restore"})
        without_affinity(job)
        return self._run(job, "upload")

    def restore(self, chosen: dict, wait_server: float) -> dict:
        """Stop the server, restore `chosen`, start it, verify. Returns the verification."""
        server = self._server()
        replicas = server["spec"].get("replicas") or self.config.mlflow.replicas
        name = chosen["name"]
        retry = (
            f"retry: `nebari mlflow restore -c <config> --from {name}`; or start the server "
            f"without restoring: `kubectl -n {self.cluster.namespace} scale deployment/"
            f"{naming.RELEASE_NAME} --replicas={replicas}`"
        )
        template = self.runner.template(RESTORE_TEMPLATE)  # before anything is stopped
        self.cluster.scale(naming.RELEASE_NAME, 0)
        self._wait_server(server, 0, wait_server)
        try:
            self.pre_restored = self.pre_restore_backup()
        except BackupError as exc:
            self.cluster.scale(naming.RELEASE_NAME, replicas)
            raise BackupError(
                f"the pre-restore backup of the current database failed, so nothing was "
                f"restored and the server is started again: {exc}"
            ) from None
        job = self.runner.job_from(template, "restore")
        with_action(job, "fetch", ["fetch", name])
        with_action(job, "verify", ["verify", name, "--exact"])
        without_affinity(job)
        try:
            self._run(job, "verify", RESTORE_STATES)
        except Exception as exc:
            message = str(exc) if isinstance(exc, BackupError) else cluster_message(exc)
            if message is None:
                raise
            raise BackupError(f"{message}. The server is stopped (0 replicas); {retry}") from None
        self.cluster.scale(naming.RELEASE_NAME, replicas)
        try:
            self._wait_server(server, replicas, wait_server)
        except BackupError as exc:
            raise BackupError(
                f"backup {name} is restored, but {exc}: see `kubectl -n "
                f"{self.cluster.namespace} logs deployment/{naming.RELEASE_NAME} --all-containers`"
                " (its migrate-database init container upgrades the restored schema)"
            ) from None
        job = self.runner.job_from(template, "verify")
        with_action(job, "verify", ["verify", name], only=True)
        return self._run(job, "verify")

    def _run(self, job: dict, container: str, states: dict[str, str] | None = None) -> dict:
        try:
            return self.runner.run(job, container)
        except JobFailed as exc:
            where = f" (container {exc.container})" if exc.container else ""
            if exc.container in (states or {}):
                where += f"; {states[exc.container]}"
            namespace = self.cluster.namespace
            kept = f"; Job {exc.job} is kept: `kubectl -n {namespace} describe job/{exc.job}`"
            raise BackupError(f"Job {exc.job} failed{where}: {exc.message}{kept}") from None

    def _wait_server(self, server: dict, replicas: int, timeout: float) -> None:
        selector = ",".join(
            f"{k}={v}" for k, v in server["spec"]["selector"]["matchLabels"].items()
        )
        deadline = time.monotonic() + timeout
        while True:
            if replicas == 0:
                if not self.cluster.pods(selector):
                    return
                what = "server pods still running"
            else:
                status = (self.cluster.deployment(naming.RELEASE_NAME) or {}).get("status") or {}
                if (status.get("availableReplicas") or 0) >= replicas:
                    return
                what = (
                    f"{status.get('availableReplicas') or 0}/{replicas} server replicas available"
                )
            if time.monotonic() > deadline:
                raise BackupError(f"after {timeout:.0f} s: {what}")
            self.runner.sleep(self.runner.poll)


def describe(backup: dict) -> dict[str, str]:
    """One backup as the table rows the commands print."""
    counts = backup.get("counts") or {}
    size = (backup.get("dump") or {}).get("bytes")
    return {
        "name": backup["name"],
        "kind": backup.get("kind", "?"),
        "created": backup.get("created", "?"),
        "size": f"{size / 1e6:.1f} MB" if size is not None else "?",
        "schema": backup.get("schema_revision") or "-",
        "runs": str(counts.get("runs", "?")),
        "complete": "yes" if backup.get("complete", True) else "no (no manifest)",
    }


def cluster_message(exc: Exception) -> str | None:
    """One line for an error of the Kubernetes client, None for any other error."""
    status = getattr(exc, "status", None)
    if type(exc).__module__.startswith("kubernetes") and status:
        return f"the Kubernetes API answered {status} {getattr(exc, 'reason', '')}".strip()
    if type(exc).__module__.startswith(("kubernetes", "urllib3")):
        return f"no cluster reachable: {exc}".splitlines()[0]
    return None
