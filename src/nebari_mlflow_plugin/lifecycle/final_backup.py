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

When something would be lost anyway (the artifact volume, backups on it, a database
without backups, MLflow disabled with its volumes still in the namespace), the
destroy stops before anything is deleted, says what would be lost and names the
commands that copy it out; `mlflow.force_destroy: true` is the admin's "delete it".
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

KIND = "pre-destroy"
TIMEOUT_SECONDS = 3600  # the backup Job's own activeDeadlineSeconds bounds it too
COPY_POD = f"{naming.RELEASE_NAME}-copy-out"
COPY_DIR = "./mlflow-artifacts"


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


def copy_out_commands(config: Any) -> list[str]:
    """Shell commands that copy the artifact volume (with its `_backups` directory)
    out of the cluster, names filled in; a fresh backup lands there first."""
    mlflow, namespace = config.mlflow, config.namespace
    claim = mlflow.artifacts.existing_claim or f"{naming.RELEASE_NAME}-artifacts"
    kubectl = f"kubectl -n {namespace}"
    commands = []
    if mlflow.enabled and mlflow.database.type == DatabaseType.internal and mlflow.backup.enabled:
        commands.append("nebari mlflow backup -c nebari-config.yaml")
    # A ReadWriteOnce claim is attached to the server's node: the copying pod goes there.
    server = {"app.kubernetes.io/instance": naming.RELEASE_NAME,
              "app.kubernetes.io/component": "server"}  # fmt: skip
    pod = {
        "spec": {
            "containers": [{
                "name": "copy", "image": "busybox:1.36", "command": ["sleep", "3600"],
                "volumeMounts": [{"name": "artifacts", "mountPath": "/artifacts",
                                  "readOnly": True}],
            }],
            "volumes": [{"name": "artifacts",
                         "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}],
            "affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 100,
                "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                    "labelSelector": {"matchLabels": server}},
            }]}},
        }
    }  # fmt: skip
    commands += [
        f"{kubectl} run {COPY_POD} --restart=Never --image=busybox:1.36 "
        f"--overrides={shlex.quote(json.dumps(pod, separators=(',', ':')))}",
        f"{kubectl} wait --for=condition=Ready pod/{COPY_POD} --timeout=300s",
        f"{kubectl} cp {COPY_POD}:/artifacts {COPY_DIR}",
        f"{kubectl} delete pod {COPY_POD}",
    ]
    return commands


def refusal(config: Any, lost: list[str]) -> str:
    lines = ["nebari destroy would delete MLflow data that no backup keeps:"]
    lines += [f"  - {item}" for item in lost]
    if artifacts_on_volume(config) and config.mlflow.enabled:
        lines.append(
            f"Copy it out first ({COPY_DIR} then holds the artifacts and, in _backups/, the "
            "database backups; docs/admin/backups.md#nebari-destroy-backs-up-first):"
        )
        lines += [f"  {command}" for command in copy_out_commands(config)]
    lines.append(
        "Then set mlflow.force_destroy: true in the config and run nebari destroy again. "
        "Nothing was deleted."
    )
    return "\n".join(lines)


def take(config: Any, stage_outputs: dict[str, Any], backups: Any = None) -> dict:
    """Write the pre-destroy backup and read it back from the store; the fetch's report."""
    from nebari_mlflow_plugin.lifecycle.backup_jobs import BackupError, Backups, Cluster, Runner
    from nebari_mlflow_plugin.lifecycle.kube_target import kube_target

    if backups is None:
        target = kube_target(config, stage_outputs)
        cluster = Cluster(config.namespace, target.kubeconfig, target.context)
        backups = Backups(Runner(cluster, timeout=TIMEOUT_SECONDS), config)
    if backups.cluster.deployment(naming.RELEASE_NAME) is None:
        return {}  # never deployed (or already removed): nothing running to back up
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
        print(f"MLflow: no Deployment {naming.RELEASE_NAME} in namespace {config.namespace}: "
              "nothing running to back up")  # fmt: skip
        return
    counts = made["manifest"].get("counts") or {}
    print(
        f"MLflow: pre-destroy backup {made['backup']} written to {made['location']} and "
        f"verified (read back, sha256 matches): {counts.get('runs', '?')} runs in "
        f"{counts.get('experiments', '?')} experiments; after the next deploy "
        "`nebari mlflow restore -c <config>` brings it back"
    )
