terraform {
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.9.0, < 5.0.0"
    }
  }
}

# Credentials and subscription come from the ARM_* environment nebari deploys with.
provider "azurerm" {
  features {
    resource_group {
      # Never delete the artifacts' group while anything (e.g. a kept account) is in it.
      prevent_deletion_if_contains_resources = true
    }
  }
}
