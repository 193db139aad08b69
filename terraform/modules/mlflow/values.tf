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

  # Where browsers reach MLflow: a host of its own, or the Nebari domain.
  public_host = var.host != "" ? var.host : var.domain

  # Only what Terraform alone knows; the config-driven values come in var.helm_values.
  # No conditionals on object shapes: keys that do not apply are empty and merge away.
  terraform_values = {
    server = {
      allowedHosts = [local.public_host]
      # The UI's POSTs carry Origin https://<public host>; MLflow refuses other origins
      # (on a host of its own: also pages of the Nebari domain, user content included).
      corsAllowedOrigins = ["https://${local.public_host}"]
      platformEnv        = [for name, value in var.server_env : { name = name, value = value }]
      cryptoSecret = {
        name = local.crypto_secret_name
        key  = "passphrase"
      }
    }
    # Used only with auth.enabled (from helm_values); the Secret always exists.
    auth = {
      secret = { name = local.auth_secret_name }
      # Browsers sign in at the hub on the Nebari domain (see server/login.py).
      login = { authorizeUrl = "https://${var.domain}/hub/api/oauth2/authorize" }
    }
    # Traefik route at https://<public host><route_path> behind Nebari's Keycloak login
    # (a host of its own gets its certificate from the entry point's certResolver).
    ingressRoute = {
      enabled = true
      host    = local.public_host
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
