"""AWS: an S3 bucket and an IAM role for the MLflow ServiceAccount (IRSA)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from nebari_mlflow_plugin.config import cloud_names
from nebari_mlflow_plugin.config.stage_outputs import OIDC_ISSUER
from nebari_mlflow_plugin.providers.base import DOWNLOAD, UPLOAD
from nebari_mlflow_plugin.providers.cloud import (
    CloudProvider,
    noncurrent_rule,
    service_account_name,
)

S3_BUCKET = "aws_s3_bucket.artifacts[0]"
# The noncurrent-version rule: kept with the bucket, absent when noncurrent_days is null.
LIFECYCLE = "aws_s3_bucket_lifecycle_configuration.artifacts[0]"


@dataclass(frozen=True)
class AwsProvider(CloudProvider):
    def names(self, config: Any) -> cloud_names.AwsNames:
        names = cloud_names.aws_names(
            config.project_name, config.namespace, config.amazon_web_services.region
        )
        return replace(names, bucket=config.mlflow.aws.bucket_name or names.bucket)

    def terraform_vars(self, config: Any, stage_outputs: dict[str, Any]) -> dict[str, Any]:
        names = self.names(config)
        return {
            **self.common_vars(config),
            "region": config.amazon_web_services.region,
            "oidc_issuer_url": OIDC_ISSUER.read(stage_outputs),
            "bucket_name": names.bucket,
            "role_name": names.role,
            "kms_key_arn": config.mlflow.aws.kms_key_arn or "",
        }

    def preflight_checks(self, config: Any) -> list[Any]:
        # Imported where used, like every pre-flight: validation needs none of it.
        from nebari_mlflow_plugin.providers import aws_preflight

        names = self.names(config)
        return aws_preflight.aws_checks(
            region=config.amazon_web_services.region,
            bucket=names.bucket,
            role=names.role,
            # Nebari's stage 02 names the EKS cluster `<escaped project>-<namespace>`.
            cluster=f"{config.escaped_project_name}-{config.namespace}",
            kms_key_arn=config.mlflow.aws.kms_key_arn,
            lifecycle=config.mlflow.artifacts.noncurrent_days is not None,
        )

    def retained_addresses(self) -> list[str]:
        return [
            S3_BUCKET,
            "aws_s3_bucket_ownership_controls.artifacts[0]",
            "aws_s3_bucket_public_access_block.artifacts[0]",
            "aws_s3_bucket_versioning.artifacts[0]",
            "aws_s3_bucket_server_side_encryption_configuration.artifacts[0]",
            "aws_s3_bucket_policy.artifacts[0]",
            LIFECYCLE,
        ]

    def state_imports(self, config: Any) -> list[tuple[str, str]]:
        bucket = self.names(config).bucket
        # Every bucket sub-resource is imported by the bucket name.
        return [
            (address, bucket)
            for address in self.retained_addresses()
            if address != LIFECYCLE or config.mlflow.artifacts.noncurrent_days is not None
        ]

    def presigned_support(self, config: Any) -> frozenset[str]:
        # IRSA credentials sign S3 URLs (SigV4 with the session token); the role may
        # create, complete and abort multipart uploads (identity.tf).
        return frozenset({UPLOAD, DOWNLOAD})

    def artifact_store(self, config: Any) -> str:
        return f"s3://{self.names(config).bucket}/{cloud_names.ARTIFACTS_PREFIX}"

    def planned_resources(self, config: Any) -> list[str]:
        names = self.names(config)
        encryption = (
            f"KMS {config.mlflow.aws.kms_key_arn}" if config.mlflow.aws.kms_key_arn else "SSE-S3"
        )
        return [
            f"S3 bucket {names.bucket} (versioned{noncurrent_rule(config)}, {encryption}, "
            "public access blocked, TLS only)",
            f"IAM role {names.role} for ServiceAccount "
            f"{config.namespace}/{service_account_name(config)} with read/write "
            "on that bucket only",
        ]
