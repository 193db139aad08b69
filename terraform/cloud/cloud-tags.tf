# Tags (AWS, Azure) and labels (GCP) on the cloud resources this stage creates, so
# an admin can tell in the cloud console what they are and which deployment owns them.
locals {
  cloud_tags = {
    "app.kubernetes.io/name"       = "mlflow"
    "app.kubernetes.io/managed-by" = "nebari-mlflow-plugin"
    "nebari.dev/namespace"         = var.namespace
  }
  # GCP label keys take only lowercase letters, digits, '-' and '_'.
  cloud_labels = { for key, value in local.cloud_tags : replace(replace(key, ".", "-"), "/", "-") => value }
}
