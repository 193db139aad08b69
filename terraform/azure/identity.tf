# Azure workload identity: the MLflow ServiceAccount of this namespace, through this
# cluster's OIDC issuer, gets tokens of a user-assigned identity that may read and
# write blobs of the artifact account only. No account keys or SAS are used.
# Not conditional on var.enabled: deleting the role assignment inside the locked
# group would be refused, and the identity is useless without the ServiceAccount.
resource "azurerm_user_assigned_identity" "mlflow" {
  name                = var.identity_name
  resource_group_name = var.resource_group_name
  location            = var.region
}

resource "azurerm_federated_identity_credential" "mlflow" {
  name                = "kubernetes-${var.namespace}-${var.service_account}"
  resource_group_name = var.resource_group_name
  parent_id           = azurerm_user_assigned_identity.mlflow.id
  audience            = ["api://AzureADTokenExchange"]
  issuer              = var.oidc_issuer_url
  subject             = "system:serviceaccount:${var.namespace}:${var.service_account}"
}

resource "azurerm_role_assignment" "blob_data" {
  scope                = azurerm_storage_account.artifacts.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.mlflow.principal_id
  principal_type       = "ServicePrincipal"
}
