# Users hold the JupyterHub scope MLflow requires (access:services!service=MLflow)
# through a client role of Keycloak's `jupyterhub` client with the attributes
# `component = jupyterhub` and `scopes`, which Nebari's KeyCloakOAuthenticator turns into
# a JupyterHub role (at hub start for the groups, at each login for the user). As
# Nebari's stage 07 declares `allow-read-access-to-services-role`.
locals {
  enabled = var.role != null
  groups  = local.enabled ? toset(var.role.groups) : toset([])
}

data "keycloak_openid_client" "jupyterhub" {
  count     = local.enabled ? 1 : 0
  realm_id  = var.realm_id
  client_id = "jupyterhub"
}

resource "keycloak_role" "mlflow_access" {
  count       = local.enabled ? 1 : 0
  realm_id    = var.realm_id
  client_id   = data.keycloak_openid_client.jupyterhub[0].id
  name        = var.role.name
  description = var.role.description
  attributes  = var.role.attributes
}

data "keycloak_group" "members" {
  for_each = local.groups
  realm_id = var.realm_id
  name     = each.key
}

# exhaustive = false: adds this role to the group, leaves the group's other roles alone.
resource "keycloak_group_roles" "mlflow_access" {
  for_each   = local.groups
  realm_id   = var.realm_id
  group_id   = data.keycloak_group.members[each.key].id
  role_ids   = [keycloak_role.mlflow_access[0].id]
  exhaustive = false
}
