# Taking over a deployment of nebari-mlflow-plugin 2025.10.x (same stage name, so
# the same OpenTofu state). Its Bitnami Helm release holds the old PostgreSQL and
# MinIO volumes: it is forgotten, never uninstalled, so the first deploy leaves it
# running while the server pod's `takeover` init containers copy its data.
# `nebari mlflow migrate --finish` removes it after the counts are verified.
# No lifecycle block: nebari runs OpenTofu 1.8, whose `removed` always forgets and
# rejects `lifecycle` (accepted from OpenTofu 1.10, where absent still means forget).
# A `removed` block whose address is not in the state does nothing.
removed {
  from = helm_release.mlflow
}
