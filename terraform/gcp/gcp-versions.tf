terraform {
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.14.1, < 7.0.0"
    }
  }
}

# Credentials come from the environment nebari deploys with (GOOGLE_CREDENTIALS or
# application-default credentials), as for nebari's own GCP stages.
provider "google" {
  project = var.project_id
  region  = var.region
}
