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

variable "host" {
  description = "A host of MLflow's own (mlflow.host); empty: the Nebari domain."
  type        = string
  default     = ""
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

variable "keycloak_realm_id" {
  description = "Nebari's Keycloak realm (output realm_id of stage 06)."
  type        = string
}

variable "hub_access_role" {
  description = "Keycloak client role giving users MLflow's JupyterHub scope, with its groups; null with auth off."
  type = object({
    name        = string
    description = string
    attributes  = map(string)
    groups      = list(string)
  })
  default = null
}

variable "helm_wait" {
  description = "Whether Helm waits for the server to become ready; false while a 2025.10.x takeover copies (its old server keeps serving)."
  type        = bool
  default     = true
}
