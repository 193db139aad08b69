# The Keycloak provider as Nebari's own stages (06, 07) require and configure it: the
# same source and version, credentials from the KEYCLOAK_* environment nebari sets
# while it deploys or destroys its stages (stage 05's keycloak_provider_context). It
# is configured here, not in the root, because each provider's root files hold the
# root's one required_providers block; so this module is called without count.
terraform {
  required_providers {
    keycloak = {
      source  = "mrparkers/keycloak"
      version = "3.7.0"
    }
  }
  required_version = ">= 1.0"
}

provider "keycloak" {
  tls_insecure_skip_verify = true
}
