# The notebook package JupyterLab user pods mount (nebari-mlflow-plugin stage
# mlflow-notebook-client). Applied before Nebari's stage 07 configures JupyterHub
# with the mounts, so no user server can reference a ConfigMap that is missing.
resource "kubernetes_config_map_v1" "notebook" {
  for_each = var.config_maps

  metadata {
    name      = each.key
    namespace = var.namespace
    labels = {
      "app.kubernetes.io/name"       = "mlflow"
      "app.kubernetes.io/component"  = "notebook-client"
      "app.kubernetes.io/part-of"    = "nebari"
      "app.kubernetes.io/managed-by" = "nebari-mlflow-plugin"
    }
  }

  data = each.value
}
