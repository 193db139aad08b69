# The artifact store. Not conditional on var.enabled: disabling MLflow removes the
# workload and keeps the data. force_destroy is false unless the admin opts in, so
# GCS itself refuses to delete a bucket that still holds objects.
resource "google_storage_bucket" "artifacts" {
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
