# The aws provider block itself comes from nebari (_nebari.tf.json, with the region
# of amazon_web_services); this only pins the version nebari's own stages use.
terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.33.0, < 6.0.0"
    }
  }
}
