# Chart values only Terraform knows. Kept apart from resources so tests can
# evaluate them with a provider-free Terraform run.
locals {
  db_secret_name     = "${var.name}-postgres"
  crypto_secret_name = "${var.name}-crypto"
  auth_secret_name   = "${var.name}-auth"
  secret_labels = {
    "app.kubernetes.io/name"       = "mlflow"
    "app.kubernetes.io/instance"   = var.name
    "app.kubernetes.io/managed-by" = "nebari-mlflow-plugin"
  }

  # Only what Terraform alone knows; the config-driven values come in var.helm_values.
  # No conditionals on object shapes: keys that do not apply are empty and merge away.
  terraform_values = {
    server = {
      allowedHosts = [var.domain]
      # The UI's POSTs carry Origin https://<domain>; MLflow refuses other origins.
      corsAllowedOrigins = ["https://${var.domain}"]
      platformEnv        = [for name, value in var.server_env : { name = name, value = value }]
      cryptoSecret = {
        name = local.crypto_secret_name
        key  = "passphrase"
      }
    }
    # Used only with auth.enabled (from helm_values); the Secret always exists.
    auth = {
      secret = { name = local.auth_secret_name }
    }
    # Traefik route at https://<domain><route_path> behind Nebari's Keycloak login.
    ingressRoute = {
      enabled = true
      host    = var.domain
      middlewares = [
        {
          name      = var.forward_auth_middleware
          namespace = var.namespace
        }
      ]
    }
    serviceAccount = {
      annotations = var.service_account_annotations
    }
    podLabels = var.pod_labels
    database = {
      internal = {
        # Used only in internal mode; the Secret exists exactly then.
        passwordSecret = {
          name = local.db_secret_name
          key  = "password"
        }
      }
    }
    # A cloud store URI from the provider; absent otherwise, so the volume or the
    # S3-compatible store chosen in helm_values stays.
    artifacts = { for key, value in { destination = var.artifacts_destination } : key => value if value != "" }
  }
}
