# MLflow's JupyterHub access role in Keycloak (see modules/hub-access). Called without
# count (the module configures its provider); an absent role creates nothing.
module "hub_access" {
  source = "./modules/hub-access"

  realm_id = var.keycloak_realm_id
  role     = var.enabled ? var.hub_access_role : null
}
