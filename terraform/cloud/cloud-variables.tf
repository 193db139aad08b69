# Variables every cloud provider's files take (rendered next to terraform/<provider>/).

variable "service_account" {
  description = "Name of the MLflow server's Kubernetes ServiceAccount; the cloud identity trusts exactly this one."
  type        = string
}

variable "artifacts_prefix" {
  description = "Key prefix in the bucket or container under which MLflow stores artifacts."
  type        = string
}

variable "force_destroy" {
  description = "Let Terraform delete the artifact store with its data. false: the store is kept (see the stage's destroy)."
  type        = bool
  default     = false
}

variable "noncurrent_days" {
  description = "Days a noncurrent object version (a deleted backup, an artifact purged by mlflow gc, an overwritten file) is kept before the store's lifecycle rule deletes it; null keeps them forever (no rule)."
  type        = number
  default     = 30
  nullable    = true

  validation {
    condition     = var.noncurrent_days == null ? true : var.noncurrent_days >= 1
    error_message = "noncurrent_days must be at least 1, or null to keep noncurrent versions forever."
  }
}
