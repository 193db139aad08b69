# 2025.10.x's storage account lives in Nebari's own resource group, which
# `nebari destroy` deletes with everything in it, and its settings (LRS, no lock)
# are not ours: it is forgotten, not adopted, and kept as it is. The takeover
# copies what the old server stored into our account; the admin deletes the old
# account afterwards (docs/admin/upgrade.md#upgrading-from-nebari-mlflow-plugin-202510x).
# Its identity, role assignment and federated credential hold no data and are destroyed.
removed {
  from = azurerm_storage_account.mlflow
}

removed {
  from = azurerm_storage_container.mlflow
}
