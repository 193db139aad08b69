variable "realm_id" {
  description = "Nebari's Keycloak realm (output realm_id of stage 06)."
  type        = string
}

variable "role" {
  description = "The client role on Keycloak's jupyterhub client giving MLflow's JupyterHub scope, and the groups it is mapped to; null: none (MLflow or its auth off)."
  type = object({
    name        = string
    description = string
    attributes  = map(string)
    groups      = list(string)
  })
  default = null
}
