# Variables of the gcp root files; the stage's GcpProvider.terraform_vars() supplies them.
# Names come from nebari_mlflow_plugin/providers/cloud_names.py; the validations
# restate GCS and IAM rules so a bad name fails at plan, before anything is created.

variable "project_id" {
  description = "GCP project of the cluster (stage 02 output project_id)."
  type        = string
}

variable "region" {
  description = "GCP region of the cluster."
  type        = string
}

variable "bucket_location" {
  description = "Location of the artifact bucket (a region or multi-region)."
  type        = string
}

variable "bucket_name" {
  description = "GCS bucket for MLflow artifacts."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$", var.bucket_name)) && !startswith(var.bucket_name, "goog") && !strcontains(var.bucket_name, "google")
    error_message = "bucket_name must be 3-63 lowercase letters, digits, - and _, without goog prefix or google."
  }
}

variable "gcp_service_account_id" {
  description = "Account id of the Google service account MLflow runs as."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.gcp_service_account_id))
    error_message = "gcp_service_account_id must be 6-30 characters: a lowercase letter, then lowercase letters, digits or hyphens, not ending in a hyphen."
  }
}
