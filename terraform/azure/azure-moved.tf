# Addresses of states written before the storage and identity became conditional on
# var.enabled.
moved {
  from = azurerm_resource_group.storage
  to   = azurerm_resource_group.storage[0]
}

moved {
  from = azurerm_storage_account.artifacts
  to   = azurerm_storage_account.artifacts[0]
}

moved {
  from = azurerm_storage_container.artifacts
  to   = azurerm_storage_container.artifacts[0]
}

moved {
  from = azurerm_user_assigned_identity.mlflow
  to   = azurerm_user_assigned_identity.mlflow[0]
}

moved {
  from = azurerm_federated_identity_credential.mlflow
  to   = azurerm_federated_identity_credential.mlflow[0]
}

moved {
  from = azurerm_role_assignment.blob_data
  to   = azurerm_role_assignment.blob_data[0]
}
