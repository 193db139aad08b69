# Variables of the aws root files; the stage's AwsProvider.terraform_vars() supplies them.
# Names come from nebari_mlflow_plugin/providers/cloud_names.py; the validations
# restate S3 and IAM rules so a bad name fails at plan, before anything is created.

variable "region" {
  description = "AWS region of the cluster and of the artifact bucket."
  type        = string
}

variable "oidc_issuer_url" {
  description = "The EKS cluster's OIDC issuer URL (stage 02 output cluster_oidc_issuer_url)."
  type        = string

  validation {
    condition     = can(regex("^https://", var.oidc_issuer_url))
    error_message = "oidc_issuer_url must be the https:// issuer URL of the EKS cluster."
  }
}

variable "bucket_name" {
  description = "S3 bucket for MLflow artifacts."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", var.bucket_name)) && !startswith(var.bucket_name, "xn--")
    error_message = "bucket_name must be 3-63 lowercase letters, digits and hyphens."
  }
}

variable "role_name" {
  description = "IAM role the MLflow ServiceAccount assumes (IRSA)."
  type        = string

  validation {
    condition     = can(regex("^[\\w+=,.@-]{1,64}$", var.role_name))
    error_message = "role_name must be at most 64 characters of letters, digits and +=,.@_-."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for the bucket's default encryption; empty uses SSE-S3 (AES256)."
  type        = string
  default     = ""
}
