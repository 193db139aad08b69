"""Provider builders: what a provider adds to the shared deployment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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

    def check_supported(self) -> None:
        """Raise ValueError when the plugin cannot deploy on this provider."""

    def terraform_vars(self, config: Any, stage_outputs: dict[str, Any]) -> dict[str, Any]:
        """Variables only this provider's root module declares."""
        return {}

    def placeholder_outputs(self) -> dict[str, Any]:
        """Stage outputs terraform_vars() reads, as placeholders for an offline preview."""
        return {}

    def planned_resources(self, config: Any) -> list[str]:
        """Cloud resources this provider creates besides the chart's, for people to read."""
        return []


@dataclass(frozen=True)
class VolumeProvider(Provider):
    """Clusters without a cloud object store: artifacts on a PersistentVolumeClaim
    (or an S3-compatible store the admin names)."""

    @property
    def terraform_root(self) -> str:
        return "volume"


@dataclass(frozen=True)
class UnsupportedProvider(Provider):
    """A provider whose storage and identity modules are not shipped yet.

    Failing at config validation means `nebari deploy` stops before any stage
    runs, never half-way through.
    """

    @property
    def terraform_root(self) -> str:
        # Only ever rendered with mlflow.enabled false (validation refuses the rest),
        # where no storage or identity is created.
        return "volume"

    def check_supported(self) -> None:
        raise ValueError(
            f"nebari-mlflow-plugin cannot deploy MLflow on provider {self.name!r} yet "
            "(cloud object storage with workload identity is not implemented); set "
            "'mlflow: {enabled: false}' or deploy on 'local' or 'existing'"
        )
