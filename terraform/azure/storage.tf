# The artifact store, in its own resource group: nebari destroy deletes Nebari's group
# with everything in it. Created only while MLflow is enabled: a deployment that never
# enables it creates nothing. Disabling it later keeps the data: the stage forgets
# these objects before apply (as on nebari destroy) and adopts them again when MLflow
# is re-enabled.
resource "azurerm_resource_group" "storage" {
  count = var.enabled ? 1 : 0

  name     = var.storage_resource_group_name
  location = var.region

  tags = local.cloud_tags
}

# Unless the admin opts in to deletion, Azure itself refuses to delete the group or
# anything in it. The account depends on the lock, so Terraform destroys the account
# before the lock, is refused, and stops there: the data stays.
resource "azurerm_management_lock" "keep_data" {
  count = var.enabled && !var.force_destroy ? 1 : 0

  name       = "nebari-mlflow-keep-data"
  scope      = azurerm_resource_group.storage[0].id
  lock_level = "CanNotDelete"
  notes      = "MLflow artifacts. Set mlflow.force_destroy: true and deploy to remove this lock."
}

resource "azurerm_storage_account" "artifacts" {
  count = var.enabled ? 1 : 0

  name                            = var.storage_account_name
  resource_group_name             = azurerm_resource_group.storage[0].name
  location                        = azurerm_resource_group.storage[0].location
  account_kind                    = "StorageV2"
  account_tier                    = "Standard"
  account_replication_type        = var.account_replication_type
  https_traffic_only_enabled      = true
  min_tls_version                 = "TLS1_2"
  allow_nested_items_to_be_public = false

  blob_properties {
    versioning_enabled = true

    delete_retention_policy {
      days = 30
    }

    container_delete_retention_policy {
      days = 30
    }
  }

  tags = local.cloud_tags

  depends_on = [azurerm_management_lock.keep_data]
}

# What versioning keeps is bounded: previous versions (deleted backups, artifacts purged
# by `mlflow gc`, overwritten files) are deleted noncurrent_days after they became
# previous versions; current blobs are never touched. Inside the locked group Azure
# refuses its deletion: it is kept (forgotten and adopted) with the account.
resource "azurerm_storage_management_policy" "artifacts" {
  count = var.enabled && var.noncurrent_days != null ? 1 : 0

  storage_account_id = azurerm_storage_account.artifacts[0].id

  rule {
    name    = "expire-noncurrent-versions"
    enabled = true

    filters {
      blob_types = ["blockBlob"]
    }

    actions {
      version {
        delete_after_days_since_creation = var.noncurrent_days
      }
    }
  }
}

resource "azurerm_storage_container" "artifacts" {
  count = var.enabled ? 1 : 0

  name                  = var.container_name
  storage_account_id    = azurerm_storage_account.artifacts[0].id
  container_access_type = "private"
}
