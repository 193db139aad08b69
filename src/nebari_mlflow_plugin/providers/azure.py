"""Azure: a storage account and container, and a user-assigned identity federated
with the MLflow ServiceAccount (Azure workload identity)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from nebari_mlflow_plugin.config import cloud_names
from nebari_mlflow_plugin.config.overrides import merge_values
from nebari_mlflow_plugin.config.stage_outputs import AZURE_RESOURCE_GROUP, OIDC_ISSUER
from nebari_mlflow_plugin.providers.cloud import (
    CloudProvider,
    noncurrent_rule,
    service_account_name,
)

if TYPE_CHECKING:  # imported where used: validating a config needs little of it
    from nebari_mlflow_plugin.providers.preflight import CheckResult

RESOURCE_GROUP = "azurerm_resource_group.storage[0]"
ACCOUNT = "azurerm_storage_account.artifacts[0]"
CONTAINER = "azurerm_storage_container.artifacts[0]"
LOCK = "azurerm_management_lock.keep_data[0]"
# Inside the locked group: Azure refuses its deletion, so it is kept with the account.
POLICY = "azurerm_storage_management_policy.artifacts[0]"
# Inside the locked group Azure refuses its deletion: forgotten with the storage. It is
# not adopted again: a re-enabled deployment has a new identity and a new assignment.
ROLE_ASSIGNMENT = "azurerm_role_assignment.blob_data[0]"


@dataclass(frozen=True)
class AzureProvider(CloudProvider):
    # MLflow 3.17 presigns Azure uploads (a SAS per blob, block ids mlflow_block_1 ...
    # mlflow_block_N), but Azure requires every block id of a blob to have one length:
    # from the 10th part (90 MiB in MLflow's 10 MiB chunks) Put Block answers
    # InvalidBlobOrBlock and the upload fails. Advertised anyway (/server-info), so
    # pods are told: never (render/injection.py; tests/e2e/test_direct_transfers.py).
    no_presigned_because: ClassVar[str] = (
        "MLflow's presigned Azure uploads name blocks mlflow_block_1 ... mlflow_block_N and "
        "Azure refuses block ids of different lengths in one blob, so every file of 10 "
        "parts or more (90 MiB) fails"
    )

    def names(self, config: Any) -> cloud_names.AzureNames:
        names = cloud_names.azure_names(
            config.project_name, config.namespace, config.azure.storage_account_postfix
        )
        settings = config.mlflow.azure
        return replace(
            names,
            resource_group=settings.resource_group_name or names.resource_group,
            storage_account=settings.storage_account_name or names.storage_account,
        )

    def check_config(self, config: Any) -> None:
        from nebari_mlflow_plugin.providers import preflight

        super().check_config(config)
        preflight.require_azure_workload_identity(config)

    def preflight_checks(self, config: Any) -> list[CheckResult]:
        from nebari_mlflow_plugin.providers import preflight

        return preflight.azure_checks(
            bool(config.mlflow.force_destroy),
            lifecycle=config.mlflow.artifacts.noncurrent_days is not None,
        )

    def terraform_vars(self, config: Any, stage_outputs: dict[str, Any]) -> dict[str, Any]:
        names = self.names(config)
        return {
            **self.common_vars(config),
            "region": config.azure.region,
            "resource_group_name": AZURE_RESOURCE_GROUP.read(stage_outputs),
            "oidc_issuer_url": OIDC_ISSUER.read(stage_outputs),
            "storage_resource_group_name": names.resource_group,
            "storage_account_name": names.storage_account,
            "container_name": names.container,
            "identity_name": names.identity,
            "account_replication_type": config.mlflow.azure.account_replication_type,
        }

    def retained_addresses(self) -> list[str]:
        return [RESOURCE_GROUP, LOCK, ACCOUNT, POLICY, CONTAINER, ROLE_ASSIGNMENT]

    def state_imports(self, config: Any) -> list[tuple[str, str]]:
        # Azure ids need the subscription, which nebari reads from the same variable.
        subscription = os.environ.get("ARM_SUBSCRIPTION_ID")
        if not subscription:
            return []
        names = self.names(config)
        group = f"/subscriptions/{subscription}/resourceGroups/{names.resource_group}"
        account = f"{group}/providers/Microsoft.Storage/storageAccounts/{names.storage_account}"
        imports = [
            (RESOURCE_GROUP, group),
            (ACCOUNT, account),
            (CONTAINER, f"{account}/blobServices/default/containers/{names.container}"),
        ]
        if config.mlflow.artifacts.noncurrent_days is not None:  # else no such address
            imports.append((POLICY, f"{account}/managementPolicies/default"))
        if not config.mlflow.force_destroy:
            lock = f"{group}/providers/Microsoft.Authorization/locks/nebari-mlflow-keep-data"
            imports.insert(1, (LOCK, lock))
        return imports

    def placeholder_outputs(self) -> dict[str, Any]:
        return merge_values(
            super().placeholder_outputs(),
            AZURE_RESOURCE_GROUP.nested("PLACEHOLDER-resource-group-known-after-stage-02"),
        )

    def artifact_store(self, config: Any) -> str:
        names = self.names(config)
        return (
            f"wasbs://{names.container}@{names.storage_account}.blob.core.windows.net/"
            f"{cloud_names.ARTIFACTS_PREFIX}"
        )

    def planned_resources(self, config: Any) -> list[str]:
        names = self.names(config)
        account = service_account_name(config)
        lock = "" if config.mlflow.force_destroy else ", locked against deletion"
        return [
            f"resource group {names.resource_group}{lock}",
            f"storage account {names.storage_account} (HTTPS only, TLS 1.2+, no public blobs, "
            f"versioned{noncurrent_rule(config)}, "
            f"{config.mlflow.azure.account_replication_type}) with container {names.container}",
            f"managed identity {names.identity} federated with ServiceAccount "
            f"{config.namespace}/{account}, Storage Blob Data Contributor on that account only",
        ]
