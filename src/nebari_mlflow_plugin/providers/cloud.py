"""What the three cloud providers share: Terraform variables, the ServiceAccount
name the identity trusts, kept storage, and the pre-flight entry points."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from nebari_mlflow_plugin.config import cloud_names, naming
from nebari_mlflow_plugin.config.stage_outputs import OIDC_ISSUER
from nebari_mlflow_plugin.providers.base import Provider


def service_account_name(config: Any) -> str:
    """The chart's ServiceAccount: the release name unless the admin overrides it.

    The cloud identity trusts exactly this name, so it is read from the same
    place the chart reads it.
    """
    overrides = config.mlflow.overrides or {}
    account = overrides.get("serviceAccount") or {}
    return str(account.get("name") or naming.RELEASE_NAME)


def noncurrent_rule(config: Any) -> str:
    """The store's lifecycle rule, for people to read (planned_resources)."""
    days = config.mlflow.artifacts.noncurrent_days
    if days is None:
        return ", noncurrent versions kept forever"
    return f", noncurrent versions deleted after {days} days"


@dataclass(frozen=True)
class CloudProvider(Provider):
    """A cloud object store reached through workload identity (no static keys)."""

    # The store the plugin creates, which pods reach as the server does.
    direct_by_default: ClassVar[bool] = True

    @property
    def terraform_dirs(self) -> tuple[str, ...]:
        # terraform/cloud/: the variables every cloud provider's files take.
        return ("cloud", self.terraform_root)

    def check_config(self, config: Any) -> None:
        if config.mlflow.artifacts.existing_claim:
            raise ValueError(
                f"on provider {self.name!r} artifacts are stored in the cloud's object store, "
                "not on a volume: remove mlflow.artifacts.existing_claim"
            )
        if getattr(config.mlflow.artifacts.type, "value", None) == "s3":
            raise ValueError(
                f"on provider {self.name!r} nebari-mlflow-plugin creates the artifact store and "
                "reaches it through workload identity; mlflow.artifacts.type 's3' (static keys) "
                f"is for local/existing clusters. Remove mlflow.artifacts.s3, or set "
                f"mlflow.{self.name}.* to name the store"
            )

    def common_vars(self, config: Any) -> dict[str, Any]:
        return {
            "service_account": service_account_name(config),
            "artifacts_prefix": cloud_names.ARTIFACTS_PREFIX,
            "force_destroy": bool(config.mlflow.force_destroy),
            "noncurrent_days": config.mlflow.artifacts.noncurrent_days,
        }

    def placeholder_outputs(self) -> dict[str, Any]:
        return OIDC_ISSUER.nested("https://PLACEHOLDER-oidc-issuer-known-after-stage-02")
