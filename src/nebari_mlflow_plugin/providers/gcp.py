"""GCP: a GCS bucket and a Google service account for the MLflow ServiceAccount."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from nebari_mlflow_plugin.config import cloud_names
from nebari_mlflow_plugin.config.stage_outputs import GCP_PROJECT
from nebari_mlflow_plugin.providers.cloud import (
    CloudProvider,
    noncurrent_rule,
    service_account_name,
)

if TYPE_CHECKING:  # imported where used: validating a config needs little of it
    from nebari_mlflow_plugin.providers.preflight import CheckResult

GCS_BUCKET = "google_storage_bucket.artifacts[0]"


@dataclass(frozen=True)
class GcpProvider(CloudProvider):
    # MLflow's GCS repository presigns with blob.generate_signed_url() and no signer
    # arguments: that needs a service-account private key, and GKE workload identity
    # gives the server a token only. Advertised anyway (/server-info), a pod's upload of
    # a large file would fail, so pods are told: never (render/injection.py).
    no_presigned_because: ClassVar[str] = (
        "MLflow signs GCS URLs with a service-account private key and the server's GKE "
        "workload identity has none ('you need a private key to sign credentials')"
    )

    def gcp_project(self, config: Any, stage_outputs: dict[str, Any] | None = None) -> str:
        project = GCP_PROJECT.get(stage_outputs or {})
        return str(project or config.google_cloud_platform.project)

    def names(self, config: Any) -> cloud_names.GcpNames:
        names = cloud_names.gcp_names(
            config.project_name, config.namespace, config.google_cloud_platform.project
        )
        return replace(names, bucket=config.mlflow.gcp.bucket_name or names.bucket)

    def terraform_vars(self, config: Any, stage_outputs: dict[str, Any]) -> dict[str, Any]:
        names = self.names(config)
        region = config.google_cloud_platform.region
        return {
            **self.common_vars(config),
            "project_id": self.gcp_project(config, stage_outputs),
            "region": region,
            "bucket_location": config.mlflow.gcp.bucket_location or region,
            "bucket_name": names.bucket,
            "gcp_service_account_id": names.service_account_id,
        }

    def preflight_checks(self, config: Any) -> list[CheckResult]:
        from nebari_mlflow_plugin.providers import preflight

        return preflight.gcp_checks(
            config.google_cloud_platform.project,
            lifecycle=config.mlflow.artifacts.noncurrent_days is not None,
        )

    def retained_addresses(self) -> list[str]:
        return [GCS_BUCKET]

    def state_imports(self, config: Any) -> list[tuple[str, str]]:
        project = config.google_cloud_platform.project
        return [(GCS_BUCKET, f"{project}/{self.names(config).bucket}")]

    def placeholder_outputs(self) -> dict[str, Any]:
        return {}

    def artifact_store(self, config: Any) -> str:
        return f"gs://{self.names(config).bucket}/{cloud_names.ARTIFACTS_PREFIX}"

    def planned_resources(self, config: Any) -> list[str]:
        names = self.names(config)
        project = config.google_cloud_platform.project
        account = service_account_name(config)
        return [
            f"GCS bucket {names.bucket} (uniform access, versioned{noncurrent_rule(config)}, "
            "public access prevented)",
            f"service account {names.service_account_id}@{project}.iam.gserviceaccount.com with "
            f"roles/storage.objectUser on that bucket only, usable by "
            f"{project}.svc.id.goog[{config.namespace}/{account}]",
        ]
