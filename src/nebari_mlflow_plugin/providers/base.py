"""Provider builders: what a provider adds to the shared deployment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

UPLOAD = "upload"
DOWNLOAD = "download"


@dataclass(frozen=True)
class Provider:
    """A Nebari provider as the plugin sees it."""

    name: str
    # StorageClass for the database and artifact volumes when the config names none;
    # None leaves it to the cluster's default class.
    default_storage_class: str | None = None

    @property
    def terraform_root(self) -> str:
        """Folder under terraform/ with this provider's root files."""
        return self.name

    @property
    def terraform_dirs(self) -> tuple[str, ...]:
        """Folders under terraform/ whose files join terraform/root/ in the rendered
        root module (shared ones first)."""
        return (self.terraform_root,)

    def check_config(self, config: Any) -> None:
        """Raise ValueError for a config this provider cannot deploy (no network)."""

    def preflight_checks(self, config: Any) -> list[Any]:
        """Ask the cloud whether the deploying identity may create what the stage
        creates: one preflight.CheckResult per check, saying whether it ran. None for
        providers that create no cloud resources."""
        return []

    def preflight(self, config: Any) -> None:
        """The checks as config validation runs them: raise ValueError with what to
        change, warn for a check that could not run; nothing when the skip variable
        is set (offline previews set it)."""
        from nebari_mlflow_plugin.providers import preflight

        if not preflight.skipped_by_env():
            preflight.enforce(self.preflight_checks(config))

    def retained_addresses(self) -> list[str]:
        """Terraform addresses holding data: forgotten, not destroyed, on
        `nebari destroy` unless mlflow.force_destroy is true."""
        return []

    def state_imports(self, config: Any) -> list[tuple[str, str]]:
        """(address, id) of kept storage to adopt on the next deploy (nebari's
        state_imports format; imports that find nothing are ignored)."""
        return []

    def terraform_vars(self, config: Any, stage_outputs: dict[str, Any]) -> dict[str, Any]:
        """Variables only this provider's root module declares."""
        return {}

    def placeholder_outputs(self) -> dict[str, Any]:
        """Stage outputs terraform_vars() reads, as placeholders for an offline preview."""
        return {}

    def artifact_store(self, config: Any) -> str | None:
        """URI of the object store the stage creates for artifacts (what Terraform's
        `artifacts_destination` local becomes); None: a volume or the admin's store."""
        return None

    def planned_resources(self, config: Any) -> list[str]:
        """Cloud resources this provider creates besides the chart's, for people to read."""
        return []

    # Whether presigned transfers are on when mlflow.artifacts.direct_transfers is null.
    direct_by_default: ClassVar[bool] = False
    # Why this provider's store has no presigned transfers (the validation error).
    no_presigned_because: ClassVar[str] = (
        "artifacts are on a volume only the server mounts: there is no store for user pods to reach"
    )

    def presigned_support(self, config: Any) -> frozenset[str]:
        """Transfers (UPLOAD, DOWNLOAD) MLflow's artifact repository for this store can
        hand to presigned URLs signed with the server's identity."""
        return frozenset()

    def direct_transfers(self, config: Any) -> frozenset[str]:
        """The transfers user pods make straight to the store for this config; ValueError
        when `mlflow.artifacts.direct_transfers: true` asks for what cannot work."""
        wanted = config.mlflow.artifacts.direct_transfers
        supported = self.presigned_support(config)
        if wanted is None:
            return supported if self.direct_by_default else frozenset()
        if wanted and not supported:
            raise ValueError(
                f"mlflow.artifacts.direct_transfers: true is not possible on provider "
                f"{self.name!r}: {self.no_presigned_because}. Allowed here: false or null "
                "(every artifact byte goes through the MLflow server)"
            )
        return supported if wanted else frozenset()


@dataclass(frozen=True)
class VolumeProvider(Provider):
    """Clusters without a cloud object store: artifacts on a PersistentVolumeClaim
    (or an S3-compatible store the admin names)."""

    @property
    def terraform_root(self) -> str:
        return "volume"

    def presigned_support(self, config: Any) -> frozenset[str]:
        # An admin's S3-compatible store: MLflow's S3 repository presigns both ways. Off
        # unless asked for: pods must reach its endpoint_url as the server does.
        if getattr(config.mlflow.artifacts.type, "value", None) == "s3":
            return frozenset({UPLOAD, DOWNLOAD})
        return frozenset()
