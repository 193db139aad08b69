"""Keys of the 2025.10.x plugin's `mlflow:` block, refused with what replaces them.

That plugin passed `mlflow.overrides` to Bitnami's mlflow chart; this one deploys
its own chart, so those values would be refused by its schema with a bare
"additional property" message. An admin upgrading keeps the old block at first:
each old key gets one sentence saying what it was and what to write instead.
"""

from __future__ import annotations

from typing import Any

BITNAMI = "a value of the Bitnami mlflow chart that nebari-mlflow-plugin 2025.10.x deployed"
# Bitnami chart value (top level of mlflow.overrides) -> what replaces it here.
BITNAMI_VALUES: dict[str, str] = {
    "tracking": (
        "the server is configured by mlflow.* fields (mlflow.workers, mlflow.replicas, "
        "mlflow.resources, mlflow.node_selector) and by overrides.server.extraArgs / "
        "overrides.server.extraEnv"
    ),
    "run": "this plugin deploys no MLflow Projects runner: remove it",
    "postgresql": (
        "use mlflow.database (type: internal, size, storage_class); the old database is "
        "copied into it by the takeover "
        "(docs/admin/upgrade.md#upgrading-from-nebari-mlflow-plugin-202510x)"
    ),
    "externalDatabase": ("use mlflow.database.type: external with mlflow.database.external_secret"),
    "minio": (
        "no MinIO is deployed: artifacts go to mlflow.artifacts (a volume, or type: s3 for "
        "an S3-compatible store); the old MinIO's objects are copied by the takeover"
    ),
    "externalS3": "use mlflow.artifacts.s3 (local/existing) or the provider's store (mlflow.aws)",
    "externalGCS": "the provider's store is configured by mlflow.gcp.bucket_name",
    "externalAzureBlob": "the provider's store is configured by mlflow.azure.storage_account_name",
    "waitContainer": "not needed by this chart: remove it",
    "volumePermissions": "not needed by this chart: remove it",
    "gitImage": "not needed by this chart: remove it",
    "diagnosticMode": "not part of this chart: remove it",
    "commonLabels": "use overrides.podLabels",
    "commonAnnotations": "use overrides.podAnnotations",
}
OLD_FIELDS: dict[tuple[str, ...], str] = {
    ("aws", "enable_s3_encryption"): (
        "the bucket is always encrypted: SSE-S3 by default, or the KMS key named by "
        "mlflow.aws.kms_key_arn. When upgrading from 2025.10.x, set mlflow.aws.kms_key_arn to "
        "the key it created (`nebari mlflow migrate --check -c <config>` prints its ARN)"
    ),
    ("local", "minio_root_password"): (
        "no MinIO is deployed (artifacts go to a volume or mlflow.artifacts.s3); the "
        "takeover reads the old MinIO's password from its Secret `<project>-mlflow-minio`. "
        "Remove mlflow.local"
    ),
}


def problems(data: Any) -> list[str]:
    """One message per 2025.10.x key found in the raw `mlflow:` block."""
    if not isinstance(data, dict):
        return []
    found = []
    overrides = data.get("overrides") or {}
    for key in overrides if isinstance(overrides, dict) else []:
        if key in BITNAMI_VALUES:
            found.append(f"mlflow.overrides.{key} is {BITNAMI}; {BITNAMI_VALUES[key]}")
    for (section, name), replacement in OLD_FIELDS.items():
        block = data.get(section)
        if isinstance(block, dict) and name in block:
            found.append(f"mlflow.{section}.{name} was a setting of 2025.10.x: {replacement}")
    local = data.get("local")
    if "local" in data and not (isinstance(local, dict) and "minio_root_password" in local):
        found.append("mlflow.local was a section of 2025.10.x: remove it")
    return found


def check(data: Any) -> Any:
    """pydantic before-validator of the `mlflow:` block."""
    found = problems(data)
    if found:
        raise ValueError("; ".join(found))
    return data
