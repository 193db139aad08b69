"""One registry maps a Nebari provider to what differs for it.

Everything common (the chart values, the shared Terraform module) is built
once; a provider only contributes its Terraform root files and variables.
"""

from __future__ import annotations

from nebari_mlflow_plugin.providers.aws import AwsProvider
from nebari_mlflow_plugin.providers.azure import AzureProvider
from nebari_mlflow_plugin.providers.base import Provider, VolumeProvider
from nebari_mlflow_plugin.providers.gcp import GcpProvider

REGISTRY: dict[str, Provider] = {
    # kind clusters ship the "standard" (rancher local-path) StorageClass.
    "local": VolumeProvider("local", default_storage_class="standard"),
    "existing": VolumeProvider("existing", default_storage_class=None),
    # Object storage with workload identity; the cluster's default StorageClass.
    "aws": AwsProvider("aws"),
    "gcp": GcpProvider("gcp"),
    "azure": AzureProvider("azure"),
}


def provider_for(name: str) -> Provider:
    try:
        return REGISTRY[str(getattr(name, "value", name))]
    except KeyError:
        raise ValueError(
            f"nebari-mlflow-plugin does not know provider {name!r}; known: {sorted(REGISTRY)}"
        ) from None


__all__ = ["REGISTRY", "Provider", "provider_for"]
