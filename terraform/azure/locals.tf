# What terraform/root/main.tf hands to modules/mlflow on Azure.
locals {
  # The only URI form MLflow's AzureBlobArtifactRepository accepts.
  artifacts_destination = "wasbs://${join("", azurerm_storage_container.artifacts[*].name)}@${join("", azurerm_storage_account.artifacts[*].name)}.blob.core.windows.net/${var.artifacts_prefix}"
  # The AKS workload-identity webhook mounts a token and sets AZURE_CLIENT_ID,
  # AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE in pods with this label whose
  # ServiceAccount names the identity; DefaultAzureCredential, which MLflow uses
  # when no connection string or account key is set, picks them up.
  service_account_annotations = {
    "azure.workload.identity/client-id" = join("", azurerm_user_assigned_identity.mlflow[*].client_id)
  }
  pod_labels = {
    "azure.workload.identity/use" = "true"
  }
  server_env = {}
}
