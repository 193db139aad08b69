output "tracking_uri" {
  description = "In-cluster tracking URI (MLFLOW_TRACKING_URI in user pods)."
  value       = var.enabled ? module.mlflow[0].tracking_uri : null
}

output "public_url" {
  description = "URL to browse, behind Nebari's login."
  value       = var.enabled ? module.mlflow[0].public_url : null
}
