# What terraform/root/main.tf hands to modules/mlflow on GCP.
locals {
  artifacts_destination = "gs://${join("", google_storage_bucket.artifacts[*].name)}/${var.artifacts_prefix}"
  # The GKE metadata server gives pods of this ServiceAccount the Google identity;
  # google-cloud-storage finds it through application-default credentials.
  service_account_annotations = {
    "iam.gke.io/gcp-service-account" = join("", google_service_account.mlflow[*].email)
  }
  pod_labels = {}
  server_env = {
    GOOGLE_CLOUD_PROJECT = var.project_id
  }
}
