"""What survives disabling MLflow and `nebari destroy`, for this config exactly.

One source for `nebari mlflow render`'s summary and the README's table: the
answer depends on the provider (a cloud bucket is outside the cluster, a volume is
a claim in Nebari's namespace, which stage 03's destroy deletes), on where the
database is, and on `force_destroy`.
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


def what_survives(config: Any) -> dict[str, str]:
    """{operation: what of the data is there afterwards}."""
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
    backups = ", holding the database backups (nebari mlflow restore)" if _backups(config) else ""
    if mlflow.artifacts.type == ArtifactsType.s3:
        others.append(f"the S3-compatible store s3://{mlflow.artifacts.s3.bucket}{backups}")
    elif store:
        ours.append(f"artifact store {store.rsplit('/', 1)[0]}")
    else:
        ours.append("artifact volume")
        in_namespace.append("artifact volume")
    untouched = f"; untouched: {', '.join(others)}" if others else ""
    if mlflow.force_destroy:
        deleted = f"deleted: {', '.join(ours)}{untouched}"
        return {"mlflow.enabled: false": deleted, "nebari destroy": deleted}
    disable = f"kept: {', '.join(ours)} (reused when enabled again){untouched}"
    kept = [item for item in ours if item not in in_namespace]
    if kept and store and mlflow.artifacts.type != ArtifactsType.s3:
        kept[-1] += backups
    destroy = f"kept: {', '.join(kept)}" if kept else "nothing of the plugin's is kept"
    if in_namespace:
        destroy += (
            f"; deleted with Nebari's namespace by stage 03: {', '.join(in_namespace)} "
            f"({RETAIN_NOTE})"
        )
    return {"mlflow.enabled: false": disable, "nebari destroy": destroy + untouched}
