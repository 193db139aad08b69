"""`nebari destroy` backs up first, or stops before anything is deleted.

Stage 03's destroy deletes Nebari's namespace and every claim in it: the in-cluster
database's volume always, the artifact volume on local/existing. What the plugin
holds must survive the destroy or be captured first:

- the database: a final backup (kind `pre-destroy`) written to a store that outlives
  the namespace (the cloud bucket, an S3-compatible store) and verified there (the
  stored dump is read back and checked against its manifest's sha256) before the
  stage's destroy goes on;
- a store that survives by itself (cloud bucket, S3-compatible store, external
  database) needs nothing.

The backup is the backup CronJob's pod run as a Job: it needs that template and
PostgreSQL serving the database's claim, not the server (a deploy that failed half-way
or a deleted Deployment still gets its backup). No claim: nothing holds the database,
the destroy goes on and says so.

When something would be lost anyway (the artifact volume, backups on it, a database
without backups, MLflow disabled with its volumes still in the namespace, a claim no
backup Job can read now), the destroy stops before anything is deleted, says what
would be lost and names the way out: what makes the backup possible, the commands
that copy the data out; `mlflow.force_destroy: true` is the admin's "delete it".
The stage calls `check()` before its own destroy yields: nebari enters every stage's
destroy before any of them deletes, and a SystemExit there unwinds them all without
deleting (the Exceptions nebari catches would instead destroy the earlier stages).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from nebari_mlflow_plugin.config import naming
from nebari_mlflow_plugin.config.schema import ArtifactsType, DatabaseType
from nebari_mlflow_plugin.lifecycle.backup_jobs import BACKUP_TEMPLATE

KIND = "pre-destroy"
TIMEOUT_SECONDS = 3600  # the backup Job's own activeDeadlineSeconds bounds it too
COPY_POD = f"{naming.RELEASE_NAME}-copy-out"
COPY_DIR = "./mlflow-artifacts"
DATABASE_DIR = "./mlflow-database"
DUMP_FILE = "mlflow-database.dump"
HEADER = "nebari destroy would delete MLflow data that no backup keeps:"
FORCE = ("Then set mlflow.force_destroy: true in the config and run nebari destroy again. "
         "Nothing was deleted.")  # fmt: skip


class DestroyRefused(Exception):
    """Data would be lost: nothing was deleted."""


@dataclass
class Decision:
    """What the destroy does before deleting: back up (to a surviving store) or not,
    what it says, and what would be lost (non-empty: refused unless force_destroy)."""

    back_up: bool = False
    notes: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)


def _value(enum: Any) -> str:
    return str(getattr(enum, "value", enum))


def artifacts_on_volume(config: Any) -> bool:
    from nebari_mlflow_plugin.providers import provider_for

    return (
        config.mlflow.artifacts.type == ArtifactsType.default
        and provider_for(config.provider).terraform_root == "volume"
    )


def decide(config: Any) -> Decision:
    mlflow = config.mlflow
    decision = Decision()
    if mlflow.force_destroy:
        decision.notes.append(
            "mlflow.force_destroy is true: MLflow's database and artifacts (with every "
            "backup) are deleted, no backup is taken"
        )
        return decision
    internal = mlflow.database.type == DatabaseType.internal
    on_volume = artifacts_on_volume(config)
    if on_volume:
        claim = mlflow.artifacts.existing_claim or f"{naming.RELEASE_NAME}-artifacts"
        backups = " and the database backups on it" if internal and mlflow.backup.enabled else ""
        decision.lost.append(
            f"the artifact volume (claim {claim}){backups}: a claim in namespace "
            f"{config.namespace}, which stage 03 deletes (unless its StorageClass's "
            "reclaimPolicy is Retain)"
        )
    if internal and not mlflow.enabled:
        decision.lost.append(
            "the database volume: MLflow is disabled, so no backup can be taken (enable "
            "it and deploy, then destroy: a backup is taken first)"
        )
    elif internal and not mlflow.backup.enabled:
        decision.lost.append(
            "the database volume: mlflow.backup.enabled is false, so no backup of it is "
            "taken (enable backups and deploy, then destroy)"
        )
    elif internal and not on_volume:
        decision.back_up = True
    if not internal:
        decision.notes.append("the external database is not touched by nebari destroy")
    if mlflow.artifacts.type == ArtifactsType.s3:
        decision.notes.append(
            f"the S3-compatible store s3://{mlflow.artifacts.s3.bucket} is not touched"
        )
    return decision


def _copy_pod_commands(namespace: str, claim: str, mount: str, target: str,
                       component: str) -> list[str]:  # fmt: skip
    """A pod mounting `claim` read-only at `mount` (beside the `component` pod, whose
    node a ReadWriteOnce claim may be attached to), `kubectl cp` of it to `target`."""
    kubectl = f"kubectl -n {namespace}"
    holder = {"app.kubernetes.io/instance": naming.RELEASE_NAME,
              "app.kubernetes.io/component": component}  # fmt: skip
    pod = {
        "spec": {
            "containers": [{
                "name": "copy", "image": "busybox:1.36", "command": ["sleep", "3600"],
                "volumeMounts": [{"name": "data", "mountPath": mount, "readOnly": True}],
            }],
            "volumes": [{"name": "data",
                         "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}],
            "affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 100,
                "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                    "labelSelector": {"matchLabels": holder}},
            }]}},
        }
    }  # fmt: skip
    return [
        f"{kubectl} run {COPY_POD} --restart=Never --image=busybox:1.36 "
        f"--overrides={shlex.quote(json.dumps(pod, separators=(',', ':')))}",
        f"{kubectl} wait --for=condition=Ready pod/{COPY_POD} --timeout=300s",
        f"{kubectl} cp {COPY_POD}:{mount} {target}",
        f"{kubectl} delete pod {COPY_POD}",
    ]


def copy_out_commands(config: Any) -> list[str]:
    """Shell commands that copy the artifact volume (with its `_backups` directory)
    out of the cluster, names filled in; a fresh backup lands there first."""
    mlflow = config.mlflow
    claim = mlflow.artifacts.existing_claim or f"{naming.RELEASE_NAME}-artifacts"
    commands = []
    if mlflow.enabled and mlflow.database.type == DatabaseType.internal and mlflow.backup.enabled:
        commands.append("nebari mlflow backup -c nebari-config.yaml")
    return commands + _copy_pod_commands(config.namespace, claim, "/artifacts", COPY_DIR,
                                         "server")  # fmt: skip


def database_claim(config: Any) -> str:
    return config.mlflow.database.existing_claim or naming.POSTGRES_CLAIM


@dataclass(frozen=True)
class Unreachable:
    """Why no backup Job can read the database on `claim` now, and what fixes it;
    `serving`: PostgreSQL runs (a pg_dump copies the database out, else its files)."""

    claim: str
    why: str
    fix: str
    serving: bool


def unreachable(cluster: Any, config: Any) -> Unreachable | None:
    """None when the pre-destroy backup can run: the backup CronJob (its template) is
    there and PostgreSQL is ready. The server Deployment plays no part."""
    kubectl, postgres = f"kubectl -n {config.namespace}", naming.POSTGRES_NAME
    problems = []
    if cluster.cronjob(BACKUP_TEMPLATE) is None:
        problems.append(f"no backup Job (CronJob {BACKUP_TEMPLATE}) is deployed")
    statefulset = cluster.statefulset(postgres)
    ready = ((statefulset or {}).get("status") or {}).get("readyReplicas") or 0
    if statefulset is None:
        problems.append(f"its PostgreSQL (StatefulSet {postgres}) is gone")
    elif not ready:
        wanted = (statefulset.get("spec") or {}).get("replicas", 1)
        problems.append(f"its PostgreSQL (StatefulSet {postgres}) is not running "
                        f"({ready}/{wanted} ready)")  # fmt: skip
    if not problems:
        return None
    if statefulset is not None and not ready and len(problems) == 1:
        fix = (f"start it (`{kubectl} scale statefulset/{postgres} --replicas=1`; if it stays "
               f"unready: `{kubectl} describe pod {postgres}-0`)")  # fmt: skip
    else:
        fix = "deploy again (`nebari deploy -c nebari-config.yaml` recreates what is missing)"
    return Unreachable(database_claim(config), "; ".join(problems), fix, bool(ready))


def database_copy_out(config: Any, blocked: Unreachable) -> tuple[str, list[str]]:
    """(what lands where, the commands): a pg_dump while PostgreSQL serves the database
    (a file copy of a running one is not consistent), else its files."""
    if blocked.serving:
        dump = ('PGPASSWORD="$POSTGRES_PASSWORD" pg_dump --format=custom -h 127.0.0.1 '
                '-U "$POSTGRES_USER" "$POSTGRES_DB"')  # fmt: skip
        return f"{DUMP_FILE}: a pg_dump archive, which pg_restore loads", [
            f"kubectl -n {config.namespace} exec {naming.POSTGRES_NAME}-0 -c postgres -- "
            f"sh -c {shlex.quote(dump)} > {DUMP_FILE}"
        ]
    return (
        f"{DATABASE_DIR}: PostgreSQL's files, pgdata/ its data directory, which the same "
        "PostgreSQL version serves again",
        _copy_pod_commands(config.namespace, blocked.claim, "/database", DATABASE_DIR,
                           "database"),
    )  # fmt: skip


def database_refusal(config: Any, blocked: Unreachable) -> str:
    what, commands = database_copy_out(config, blocked)
    lost = (f"the database volume (claim {blocked.claim}): a claim in namespace "
            f"{config.namespace}, which stage 03 deletes; no backup can be taken now: "
            f"{blocked.why}")  # fmt: skip
    return "\n".join([
        HEADER,
        f"  - {lost}",
        f"To keep it, {blocked.fix}, then run nebari destroy again: it writes a pre-destroy "
        "backup first.",
        f"Or copy it out ({what}):",
        *[f"  {command}" for command in commands],
        FORCE,
    ])  # fmt: skip


def refusal(config: Any, lost: list[str]) -> str:
    lines = [HEADER]
    lines += [f"  - {item}" for item in lost]
    if artifacts_on_volume(config) and config.mlflow.enabled:
        lines.append(
            f"Copy it out first ({COPY_DIR} then holds the artifacts and, in _backups/, the "
            "database backups; docs/admin/backups.md#nebari-destroy-backs-up-first):"
        )
        lines += [f"  {command}" for command in copy_out_commands(config)]
    lines.append(FORCE)
    return "\n".join(lines)


def take(config: Any, stage_outputs: dict[str, Any], backups: Any = None) -> dict:
    """Write the pre-destroy backup and read it back from the store: the backup's
    report; {} when no claim holds the database; DestroyRefused when one does but no
    backup Job can read it now."""
    from nebari_mlflow_plugin.lifecycle.backup_jobs import BackupError, Backups, Cluster, Runner
    from nebari_mlflow_plugin.lifecycle.kube_target import kube_target

    if backups is None:
        target = kube_target(config, stage_outputs)
        cluster = Cluster(config.namespace, target.kubeconfig, target.context)
        backups = Backups(Runner(cluster, timeout=TIMEOUT_SECONDS), config)
    if backups.cluster.pvc(database_claim(config)) is None:
        return {}  # never deployed, or its volume already gone: nothing holds data
    if blocked := unreachable(backups.cluster, config):
        raise DestroyRefused(database_refusal(config, blocked))
    made = backups.backup(kind=KIND)
    fetched = backups.fetch(made["backup"])
    if fetched.get("manifest", {}).get("dump") != made["manifest"]["dump"]:
        raise BackupError(f"backup {made['backup']} read back from the store differs from "
                          "what was written")  # fmt: skip
    return made


def check(config: Any, stage_outputs: dict[str, Any], backups: Any = None) -> None:
    """Before the stage's destroy: back up and verify, or refuse (DestroyRefused,
    BackupError, a cluster error): the caller stops the destroy."""
    decision = decide(config)
    for note in decision.notes:
        print(f"MLflow: {note}")
    if decision.lost:
        raise DestroyRefused(refusal(config, decision.lost))
    if not decision.back_up:
        return
    print("MLflow: writing a pre-destroy backup of the database before anything is deleted")
    made = take(config, stage_outputs, backups)
    if not made:
        print(
            f"MLflow: no database volume (claim {database_claim(config)}) in namespace "
            f"{config.namespace}: nothing holds MLflow's database, nothing to back up"
        )
        return
    counts = made["manifest"].get("counts") or {}
    print(
        f"MLflow: pre-destroy backup {made['backup']} written to {made['location']} and "
        f"verified (read back, sha256 matches): {counts.get('runs', '?')} runs in "
        f"{counts.get('experiments', '?')} experiments; after the next deploy "
        "`nebari mlflow restore -c <config>` brings it back"
    )
