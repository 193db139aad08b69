# The provider's files next to this one define its storage and identity as
# local.artifacts_destination, local.service_account_annotations, local.pod_labels
# and local.server_env.
module "mlflow" {
  source = "./modules/mlflow"
  count  = var.enabled ? 1 : 0

  name                        = var.name
  namespace                   = var.namespace
  domain                      = var.domain
  host                        = var.host
  route_path                  = var.route_path
  service_port                = var.service_port
  forward_auth_middleware     = var.forward_auth_middleware
  chart_path                  = "${path.module}/chart/mlflow"
  helm_values                 = var.helm_values
  helm_overrides              = var.helm_overrides
  helm_wait                   = var.helm_wait
  internal_database           = var.internal_database
  artifacts_destination       = local.artifacts_destination
  service_account_annotations = local.service_account_annotations
  pod_labels                  = local.pod_labels
  server_env                  = local.server_env
}
