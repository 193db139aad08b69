terraform {
  required_providers {
    helm = {
      source  = "hashicorp/helm"
      version = ">= 2.1.2, < 3.0.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.35.1, < 3.0.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.6.0, < 4.0.0"
    }
  }
  required_version = ">= 1.0"
}
