"""Per-provider sections of the `mlflow:` block (mlflow.aws, mlflow.gcp, mlflow.azure).

Kept beside the provider builders that read them; schema.py only mounts them.
Every field is optional: the defaults deploy a working, private store whose
names come from providers/cloud_names.py. The name fields exist for adopting a
store created earlier or for avoiding a clash in a cloud's global namespace.
"""

from __future__ import annotations

from typing import Annotated

from nebari import schema
from pydantic import ConfigDict, StringConstraints

from nebari_mlflow_plugin.config import cloud_names

KMS_KEY_ARN_PATTERN = r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/[A-Za-z0-9/_-]+$"


class _Settings(schema.Base):
    # Python's re: the Rust engine expands counted repetitions of Unicode classes
    # (e.g. [-\w.()]{0,89}) into large automata, ~30 ms at every nebari start.
    model_config = ConfigDict(**schema.Base.model_config, regex_engine="python-re")


class AwsSettings(_Settings):
    """Settings used only when provider is aws."""

    # Customer-managed KMS key for the bucket's default encryption; null uses SSE-S3
    # (AES256). The MLflow role is granted use of this key only.
    kms_key_arn: Annotated[str, StringConstraints(pattern=KMS_KEY_ARN_PATTERN)] | None = None
    # S3 bucket name; null derives `<project>-<namespace>-mlflow-<hash>`.
    bucket_name: Annotated[str, StringConstraints(pattern=cloud_names.S3_BUCKET_RE)] | None = None


class GcpSettings(_Settings):
    """Settings used only when provider is gcp."""

    # GCS bucket name; null derives `<project>-<namespace>-mlflow-<hash>`.
    bucket_name: Annotated[str, StringConstraints(pattern=cloud_names.GCS_BUCKET_RE)] | None = None
    # Bucket location (a region such as us-central1 or a multi-region such as US);
    # null uses google_cloud_platform.region.
    bucket_location: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]+$")] | None = None


class AzureSettings(_Settings):
    """Settings used only when provider is azure."""

    # Storage account name; null derives `<projectnamespace>mlflow<hash>` (3-24 a-z0-9).
    storage_account_name: (
        Annotated[str, StringConstraints(pattern=cloud_names.AZURE_ACCOUNT_RE)] | None
    ) = None
    # Resource group holding the storage account. It is separate from Nebari's own
    # group so that `nebari destroy`, which deletes that group, leaves the data.
    # null derives `<project>-<namespace>-mlflow-<hash>` (created by the plugin).
    resource_group_name: (
        Annotated[str, StringConstraints(pattern=cloud_names.AZURE_RESOURCE_GROUP_RE)] | None
    ) = None
