output "tracking_uri" {
  description = "In-cluster tracking URI (what user pods get as MLFLOW_TRACKING_URI)."
  value       = "http://${helm_release.mlflow.name}.${var.namespace}.svc:${var.service_port}${var.route_path}"
}

output "public_url" {
  description = "URL to browse, behind Nebari's login."
  value       = "https://${var.domain}${var.route_path}/"
}

output "release_name" {
  description = "Helm release name."
  value       = helm_release.mlflow.name
}
