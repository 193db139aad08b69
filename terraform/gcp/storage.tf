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

  # What versioning keeps is bounded: noncurrent versions (deleted backups, artifacts
  # purged by `mlflow gc`, overwritten files) are deleted noncurrent_days after they
  # became noncurrent; live objects are never touched. null: no rule.
  dynamic "lifecycle_rule" {
    for_each = var.noncurrent_days == null ? [] : [var.noncurrent_days]

    content {
      condition {
        days_since_noncurrent_time = lifecycle_rule.value
        with_state                 = "ARCHIVED"
      }
      action {
        type = "Delete"
      }
    }
  }

  labels = local.cloud_labels
}
