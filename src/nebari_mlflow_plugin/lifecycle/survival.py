"""What survives disabling MLflow and `nebari destroy`, for this config exactly.

What `nebari mlflow render`'s summary says (docs/admin/survival.md tabulates it). The
answer depends on the provider (a cloud bucket is outside the cluster, a volume is
a claim in Nebari's namespace, which stage 03's destroy deletes), on where the
database is, on `force_destroy`, and on what the destroy does first
(final_backup: a pre-destroy backup, or a stop before anything is deleted).
"""

from __future__ import annotations

from typing import Any

from nebari_mlflow_plugin.config.schema import ArtifactsType, DatabaseType
from nebari_mlflow_plugin.providers import provider_for

RETAIN_NOTE = "unless its StorageClass's reclaimPolicy is Retain"


def _backups(config: Any) -> bool:
    """Scheduled backups of the in-cluster database land beside the artifacts."""
    mlflow = config.mlflow
    return mlflow.database.type == DatabaseType.internal and mlflow.backup.enabled


def _listed(label: str, items: list[str]) -> str:
    return f"{label}: {', '.join(items)}"


def what_survives(config: Any) -> dict[str, str]:
    """{operation: what of the data is there afterwards}."""
    from nebari_mlflow_plugin.lifecycle import final_backup

    mlflow = config.mlflow
    store = provider_for(config.provider).artifact_store(config)
    ours: list[str] = []  # data the plugin holds
    others: list[str] = []  # data it only uses
    in_namespace: list[str] = []  # claims stage 03's destroy deletes with the namespace
    if mlflow.database.type == DatabaseType.external:
        others.append("the external database")
    else:
        ours.append("database volume")
        in_namespace.append("database volume")
    # Backups go beside the artifacts: they outlive the namespace exactly when those do.
    backups = " (with the database backups)" if _backups(config) else ""
    if mlflow.artifacts.type == ArtifactsType.s3:
        others.append(f"the S3-compatible store s3://{mlflow.artifacts.s3.bucket}{backups}")
    elif store:
        ours.append(f"artifact store {store.rsplit('/', 1)[0]}{backups}")
    else:
        ours.append(f"artifact volume{backups}")
        in_namespace.append(f"artifact volume{backups}")
    untouched = [_listed("untouched", others)] if others else []
    if mlflow.force_destroy:
        deleted = "; ".join(
            [_listed("deleted", ours) if ours else "nothing of the plugin's to delete", *untouched]
        )
        return {"mlflow.enabled: false": deleted, "nebari destroy": deleted}
    if ours:
        disable = [_listed("kept", ours) + " (reused when enabled again)"]
    else:
        disable = ["nothing of the plugin's holds data"]
    decision = final_backup.decide(config)
    kept = [item for item in ours if item not in in_namespace]
    destroy = []
    if decision.lost:
        destroy.append(
            "stops before deleting anything: "
            + _listed("no surviving backup holds", in_namespace)
            + " (it names the commands that copy them out; mlflow.force_destroy: true deletes)"
        )
    destroy += [_listed("kept", kept)] if kept else []
    if decision.back_up:
        where = "there" if kept else "to the S3-compatible store"
        destroy.append(f"a pre-destroy backup of the database is written {where} first")
    if in_namespace and not decision.lost:
        destroy.append(
            _listed("deleted with Nebari's namespace by stage 03", in_namespace)
            + f" ({RETAIN_NOTE})"
        )
    if not ours:
        destroy.append("nothing of the plugin's holds data")
    return {
        "mlflow.enabled: false": "; ".join(disable + untouched),
        "nebari destroy": "; ".join(destroy + untouched),
    }
