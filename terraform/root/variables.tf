# Variables every provider's root module takes; the stage's input_vars() supplies
# exactly these plus the provider's own (declared in terraform/<provider>/).

variable "enabled" {
  description = "Deploy MLflow. false removes the workload and keeps its data."
  type        = bool
}

variable "name" {
  description = "Helm release name; also the Service name in the in-cluster tracking URI."
  type        = string
}

variable "namespace" {
  description = "Nebari namespace."
  type        = string
}

variable "domain" {
  description = "Public host name of the Nebari deployment."
  type        = string
}

variable "route_path" {
  description = "URL path MLflow is served under, without trailing slash."
  type        = string
}

variable "service_port" {
  description = "Port of the MLflow Service."
  type        = number
}

variable "forward_auth_middleware" {
  description = "Name of Nebari's Traefik forward-auth Middleware."
  type        = string
}

variable "internal_database" {
  description = "Run PostgreSQL in the cluster with a generated password."
  type        = bool
}

variable "helm_values" {
  description = "Chart values built from the mlflow config block, as JSON."
  type        = string
}

variable "helm_overrides" {
  description = "The admin's mlflow.overrides as JSON."
  type        = string
}

variable "helm_wait" {
  description = "Whether Helm waits for the server to become ready; false while a 2025.10.x takeover copies (its old server keeps serving)."
  type        = bool
  default     = true
}
