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
