# Azure workload identity: the MLflow ServiceAccount of this namespace, through this
# cluster's OIDC issuer, gets tokens of a user-assigned identity that may read and
# write blobs of the artifact account only. No account keys or SAS are used.
# Created only while MLflow is enabled. The role assignment lives inside the locked
# storage group, where Azure refuses its deletion: on disable and destroy the stage
# forgets it (a disabled deployment leaves an assignment whose identity is gone,
# which grants nothing) and deletes the identity.
resource "azurerm_user_assigned_identity" "mlflow" {
  count = var.enabled ? 1 : 0

  name                = var.identity_name
  resource_group_name = var.resource_group_name
  location            = var.region
}

resource "azurerm_federated_identity_credential" "mlflow" {
  count = var.enabled ? 1 : 0

  name                = "kubernetes-${var.namespace}-${var.service_account}"
  resource_group_name = var.resource_group_name
  parent_id           = azurerm_user_assigned_identity.mlflow[0].id
  audience            = ["api://AzureADTokenExchange"]
  issuer              = var.oidc_issuer_url
  subject             = "system:serviceaccount:${var.namespace}:${var.service_account}"
}

resource "azurerm_role_assignment" "blob_data" {
  count = var.enabled ? 1 : 0

  scope                = azurerm_storage_account.artifacts[0].id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.mlflow[0].principal_id
  principal_type       = "ServicePrincipal"
}
