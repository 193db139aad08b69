# Variables of the azure root files; the stage's AzureProvider.terraform_vars() supplies them.
# Names come from nebari_mlflow_plugin/providers/cloud_names.py; the validations
# restate Azure's rules so a bad name fails at plan, before anything is created.

variable "region" {
  description = "Azure region of the cluster and of the storage account."
  type        = string
}

variable "resource_group_name" {
  description = "Nebari's resource group (stage 02 output); holds the managed identity."
  type        = string
}

variable "storage_resource_group_name" {
  description = "Resource group of the storage account, apart from Nebari's so nebari destroy leaves it."
  type        = string

  validation {
    condition     = can(regex("^[-\\w.()]{0,89}[-\\w()]$", var.storage_resource_group_name))
    error_message = "storage_resource_group_name must be 1-90 letters, digits, -_.() and not end with a period."
  }
}

variable "storage_account_name" {
  description = "Storage account for MLflow artifacts."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]{3,24}$", var.storage_account_name))
    error_message = "storage_account_name must be 3-24 lowercase letters and digits."
  }
}

variable "container_name" {
  description = "Blob container for MLflow artifacts."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", var.container_name)) && !strcontains(var.container_name, "--")
    error_message = "container_name must be 3-63 lowercase letters, digits and single hyphens."
  }
}

variable "identity_name" {
  description = "User-assigned managed identity the MLflow ServiceAccount federates with."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}$", var.identity_name))
    error_message = "identity_name must be 3-128 letters, digits, hyphens and underscores."
  }
}

variable "oidc_issuer_url" {
  description = "The AKS cluster's OIDC issuer URL (stage 02 output cluster_oidc_issuer_url)."
  type        = string

  validation {
    condition     = can(regex("^https://", var.oidc_issuer_url))
    error_message = "oidc_issuer_url must be the https:// issuer URL of the AKS cluster."
  }
}

variable "account_replication_type" {
  description = "Replication of the storage account: ZRS (three zones of the region) needs a region with availability zones; LRS for a region without."
  type        = string
  default     = "ZRS"

  validation {
    condition     = contains(["LRS", "ZRS", "GRS", "RAGRS", "GZRS", "RAGZRS"], var.account_replication_type)
    error_message = "account_replication_type must be one of LRS, ZRS, GRS, RAGRS, GZRS, RAGZRS."
  }
}
