# The artifact store, created only while MLflow is enabled: a deployment that never
# enables it creates nothing. Disabling it later keeps the data: the stage forgets
# the bucket before apply (as on nebari destroy) and adopts it again when MLflow is
# re-enabled. force_destroy is false unless the admin opts in, so
# GCS itself refuses to delete a bucket that still holds objects.
resource "google_storage_bucket" "artifacts" {
  count = var.enabled ? 1 : 0

  name                        = var.bucket_name
  project                     = var.project_id
  location                    = var.bucket_location
  force_destroy               = var.force_destroy
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = true
  }

  labels = local.cloud_labels
}
