# GKE workload identity: the MLflow ServiceAccount of this namespace, and only it,
# acts as a Google service account that may use objects of the artifact bucket only.
# No service-account keys are created.
resource "google_service_account" "mlflow" {
  count = var.enabled ? 1 : 0

  project      = var.project_id
  account_id   = var.gcp_service_account_id
  display_name = "MLflow (Nebari ${var.namespace})"
  description  = "MLflow server of Nebari namespace ${var.namespace}: artifacts in ${var.bucket_name}."
}

# Bucket-level binding: objects of this bucket, nothing else in the project.
resource "google_storage_bucket_iam_member" "mlflow_objects" {
  count = var.enabled ? 1 : 0

  bucket = google_storage_bucket.artifacts[0].name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.mlflow[0].email}"
}

resource "google_service_account_iam_member" "workload_identity" {
  count = var.enabled ? 1 : 0

  service_account_id = google_service_account.mlflow[0].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${var.namespace}/${var.service_account}]"
}
