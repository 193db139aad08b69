variable "name" {
  description = "Helm release name; also the Service name in the in-cluster tracking URI."
  type        = string
}

variable "namespace" {
  description = "Nebari namespace: Traefik only watches IngressRoutes there."
  type        = string
}

variable "domain" {
  description = "Public host name of the Nebari deployment."
  type        = string
}

variable "host" {
  description = "A host name of MLflow's own (e.g. mlflow.<domain>); empty: served on the domain."
  type        = string
  default     = ""
}

variable "route_path" {
  description = "URL path MLflow is served under, without trailing slash (e.g. /mlflow)."
  type        = string

  validation {
    condition     = can(regex("^(/[A-Za-z0-9._~-]+)+$", var.route_path))
    error_message = "route_path must start with / and must not end with /."
  }
}

variable "service_port" {
  description = "Port of the MLflow Service (matches the chart's service.port)."
  type        = number
}

variable "forward_auth_middleware" {
  description = "Name of Nebari's Traefik forward-auth Middleware (Keycloak login)."
  type        = string
}

variable "chart_path" {
  description = "Path of the MLflow chart copied into the rendered stage."
  type        = string
}

variable "helm_values" {
  description = "Chart values built from the mlflow config block, as JSON."
  type        = string
}

variable "helm_overrides" {
  description = "The admin's mlflow.overrides as JSON, merged over everything else."
  type        = string
  default     = "{}"
}

variable "internal_database" {
  description = "Run PostgreSQL in the cluster; its password is generated here."
  type        = bool
}

variable "artifacts_destination" {
  description = "Object-store URI for --artifacts-destination; empty keeps the chart's volume or the S3-compatible store from helm_values."
  type        = string
  default     = ""
}

variable "service_account_annotations" {
  description = "Annotations binding the server's ServiceAccount to a cloud identity."
  type        = map(string)
  default     = {}
}

variable "pod_labels" {
  description = "Extra labels on the server pods (e.g. azure.workload.identity/use)."
  type        = map(string)
  default     = {}
}

variable "server_env" {
  description = "Extra environment of the MLflow server (e.g. the region its artifact store client needs)."
  type        = map(string)
  default     = {}
}

variable "helm_wait" {
  description = "Whether Helm waits for the release to become ready (false while a takeover copies)."
  type        = bool
  default     = true
}

variable "helm_timeout" {
  description = "Seconds Helm waits for the release to become ready."
  type        = number
  default     = 900
}
