# Alphanumeric so it can stand in a database URI without escaping. The chart
# re-applies it to the PostgreSQL role on every start, so a new password
# (e.g. after the Secret was re-created) converges instead of locking MLflow out.
resource "random_password" "database" {
  count   = var.internal_database ? 1 : 0
  length  = 32
  special = false
}

resource "kubernetes_secret_v1" "database" {
  count = var.internal_database ? 1 : 0

  metadata {
    name      = local.db_secret_name
    namespace = var.namespace
    labels    = local.secret_labels
  }

  data = {
    password = random_password.database[0].result
  }
}

# Encrypts what MLflow stores as secrets (AI Gateway provider keys): MLflow's
# default passphrase is public. Stable for the life of the state: a new one would
# make the stored secrets unreadable.
resource "random_password" "crypto" {
  length  = 48
  special = false
}

resource "kubernetes_secret_v1" "crypto" {
  metadata {
    name      = local.crypto_secret_name
    namespace = var.namespace
    labels    = local.secret_labels
  }

  data = {
    passphrase = random_password.crypto.result
  }
}

# MLflow's built-in admin (a break-glass account: `kubectl get secret mlflow-auth`) and
# the key signing the auth app's CSRF tokens (static across workers and restarts).
resource "random_password" "auth_admin" {
  length  = 32
  special = false
}

resource "random_password" "auth_flask" {
  length  = 48
  special = false
}

resource "kubernetes_secret_v1" "auth" {
  metadata {
    name      = local.auth_secret_name
    namespace = var.namespace
    labels    = local.secret_labels
  }

  data = {
    admin-password   = random_password.auth_admin.result
    flask-secret-key = random_password.auth_flask.result
  }
}

resource "helm_release" "mlflow" {
  name      = var.name
  namespace = var.namespace
  chart     = var.chart_path

  # Later documents win; maps merge deeply, lists are replaced.
  values = [
    var.helm_values,
    jsonencode(local.terraform_values),
    var.helm_overrides,
  ]

  # Not while a takeover copies (the server pods stay in Init for as long as the copy
  # takes; the old server keeps serving the route meanwhile): the deploy returns and
  # `nebari mlflow migrate --check` follows the copy.
  wait    = var.helm_wait
  timeout = var.helm_timeout

  depends_on = [kubernetes_secret_v1.database, kubernetes_secret_v1.crypto, kubernetes_secret_v1.auth]
}
