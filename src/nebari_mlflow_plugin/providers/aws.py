"""AWS: an S3 bucket and an IAM role for the MLflow ServiceAccount (IRSA)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nebari_mlflow_plugin.providers import cloud_names, preflight
from nebari_mlflow_plugin.providers.cloud import INFRASTRUCTURE, OIDC_ISSUER_OUTPUT, CloudProvider

S3_BUCKET = "aws_s3_bucket.artifacts"


@dataclass(frozen=True)
class AwsProvider(CloudProvider):
    def names(self, config: Any) -> cloud_names.AwsNames:
        names = cloud_names.aws_names(
            config.project_name, config.namespace, config.amazon_web_services.region
        )
        if config.mlflow.aws.bucket_name:
            names = cloud_names.AwsNames(bucket=config.mlflow.aws.bucket_name, role=names.role)
        return names

    def terraform_vars(self, config: Any, stage_outputs: dict[str, Any]) -> dict[str, Any]:
        names = self.names(config)
        return {
            **self.common_vars(config),
            "region": config.amazon_web_services.region,
            "oidc_issuer_url": preflight.require_stage_output(
                stage_outputs, INFRASTRUCTURE, OIDC_ISSUER_OUTPUT
            ),
            "bucket_name": names.bucket,
            "role_name": names.role,
            "kms_key_arn": config.mlflow.aws.kms_key_arn or "",
        }

    def retained_addresses(self) -> list[str]:
        return [
            S3_BUCKET,
            "aws_s3_bucket_ownership_controls.artifacts",
            "aws_s3_bucket_public_access_block.artifacts",
            "aws_s3_bucket_versioning.artifacts",
            "aws_s3_bucket_server_side_encryption_configuration.artifacts",
            "aws_s3_bucket_policy.artifacts",
        ]

    def state_imports(self, config: Any) -> list[tuple[str, str]]:
        bucket = self.names(config).bucket
        # Every bucket sub-resource is imported by the bucket name.
        return [(address, bucket) for address in self.retained_addresses()]

    def planned_resources(self, config: Any) -> list[str]:
        names = self.names(config)
        encryption = (
            f"KMS {config.mlflow.aws.kms_key_arn}" if config.mlflow.aws.kms_key_arn else "SSE-S3"
        )
        return [
            f"S3 bucket {names.bucket} (versioned, {encryption}, public access blocked, TLS only)",
            f"IAM role {names.role} for ServiceAccount "
            f"{config.namespace}/{self.common_vars(config)['service_account']} with read/write "
            "on that bucket only",
        ]
