"""Users hold MLflow's JupyterHub scope, and pods' tokens carry it (config/hub_access.py):
the Keycloak role the stage's Terraform creates, `Spawner.server_token_scopes`, the env
the notebook package's workflow tokens are made with, and what `nebari validate` refuses.
(That the hub then grants and MLflow accepts it is in tests/e2e/test_credentials.py.)"""

from __future__ import annotations

import json

import pydantic
import pytest
from support import nebari as nb
from support import terraform as tf


@pytest.fixture(autouse=True)
def _offline_cloud(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)


def hub_config(config) -> dict:
    return config.jupyterhub.overrides.get("hub", {}).get("config", {})


def pod_env(config) -> dict:
    return dict(config.jupyterhub.overrides["singleuser"]["extraEnv"])


def test_pods_tokens_carry_mlflows_scope_and_can_make_workflow_tokens():
    config = nb.validate(nb.config_dict("local", {}))
    scopes = hub_config(config)["Spawner"]["server_token_scopes"]
    # JupyterHub's default server role stays (activity, reaching the server itself).
    assert {"users:activity!user", "access:servers!server"} <= set(scopes)
    assert "access:services!service=MLflow" in scopes
    assert "tokens!user" in scopes
    env = pod_env(config)
    assert env["NEBARI_MLFLOW_HUB_SERVICE"] == "MLflow"
    assert env["NEBARI_MLFLOW_WORKFLOW_TOKEN_SECONDS"] == str(36 * 3600)
    assert env["NEBARI_MLFLOW_WORKFLOW_TOKENS"] == "auto"  # JupyterLab keeps one


def test_workflow_token_lifetime_and_keeping_are_configurable():
    config = nb.validate(nb.config_dict(
        "local", {"auth": {"workflow_token_hours": 72, "workflow_tokens": "manual"}}))  # fmt: skip
    assert pod_env(config)["NEBARI_MLFLOW_WORKFLOW_TOKEN_SECONDS"] == str(72 * 3600)
    assert pod_env(config)["NEBARI_MLFLOW_WORKFLOW_TOKENS"] == "manual"
    with pytest.raises(pydantic.ValidationError, match="workflow_token_hours"):
        nb.validate(nb.config_dict("local", {"auth": {"workflow_token_hours": 0}}))
    with pytest.raises(pydantic.ValidationError, match="workflow_tokens"):
        nb.validate(nb.config_dict("local", {"auth": {"workflow_tokens": "always"}}))


@pytest.mark.parametrize("cls", ["Spawner", "KubeSpawner"])
def test_an_admins_server_token_scopes_win(cls):
    mine = ["users:activity!user", "access:servers!server"]
    data = nb.config_dict("local", {})
    data["jupyterhub"] = {"overrides": {"hub": {"config": {cls: {"server_token_scopes": mine}}}}}
    config = nb.validate(data)
    assert hub_config(config)[cls]["server_token_scopes"] == mine
    assert "server_token_scopes" not in hub_config(config).get(
        "Spawner" if cls == "KubeSpawner" else "KubeSpawner", {}
    )


@pytest.mark.parametrize("block", [{"auth": {"enabled": False}}, {"enabled": False}])
def test_nothing_of_it_without_auth(block, tmp_path):
    config = nb.validate(nb.config_dict("local", block))
    assert "server_token_scopes" not in hub_config(config).get("Spawner", {})
    assert nb.stage_for(config, tmp_path).input_vars(nb.STAGE_OUTPUTS)["hub_access_role"] is None


def test_notebook_client_off_with_auth_on_is_refused_naming_the_fix():
    with pytest.raises(pydantic.ValidationError) as refused:
        nb.validate(nb.config_dict("local", {"notebook": {"client": False}}))
    message = str(refused.value)
    assert "mlflow.notebook.client: true" in message and "mlflow.inject_env: false" in message
    # Users who configure MLflow themselves, or no auth: accepted.
    nb.validate(nb.config_dict("local", {"notebook": {"client": False}, "inject_env": False}))
    nb.validate(nb.config_dict("local", {"notebook": {"client": False},
                                         "auth": {"enabled": False}}))  # fmt: skip


def role_of(config, tmp_path) -> dict:
    return nb.stage_for(config, tmp_path).input_vars(nb.STAGE_OUTPUTS)["hub_access_role"]


def test_the_keycloak_role_is_shaped_as_nebaris_authenticator_reads_it(tmp_path):
    """Nebari's KeyCloakOAuthenticator takes a `jupyterhub` client role's scopes only with
    `component: jupyterhub`, as one comma-separated `scopes` attribute."""
    config = nb.validate(nb.config_dict("local", {}))
    role = role_of(config, tmp_path)
    assert role["attributes"]["component"] == "jupyterhub"
    assert role["attributes"]["scopes"].split(",") == ["access:services!service=MLflow"]
    assert role["groups"] == ["admin", "developer", "analyst"]
    other = nb.validate(nb.config_dict("local", {"auth": {"hub_access_groups": ["ml-team"]}}))
    assert role_of(other, tmp_path)["groups"] == ["ml-team"]
    with pytest.raises(pydantic.ValidationError, match="hub_access_groups"):
        nb.validate(nb.config_dict("local", {"auth": {"hub_access_groups": ["/admin"]}}))
    with pytest.raises(pydantic.ValidationError, match="hub_access_groups"):
        nb.validate(nb.config_dict("local", {"auth": {"hub_access_groups": []}}))


def test_terraform_creates_the_role_on_jupyterhub_and_adds_it_to_the_groups(tmp_path):
    config = nb.validate(nb.config_dict("local", {}))
    stage_dir = nb.render_stage(config, tmp_path)
    module = tf.module_blocks(stage_dir / "modules" / "hub-access")
    call = tf.module_call(tf.module_blocks(stage_dir), "hub_access")
    assert (stage_dir / call["source"]).resolve() == (stage_dir / "modules/hub-access").resolve()
    assert "count" not in call  # the module configures its provider
    # The provider as Nebari's stages pin it, credentials from nebari's KEYCLOAK_* env.
    required = module["terraform"][0]["required_providers"][0]["keycloak"]
    assert required == {"source": "mrparkers/keycloak", "version": "3.7.0"}
    assert set(module["provider"][0]["keycloak"]) == {"tls_insecure_skip_verify"}
    (client,) = [b["keycloak_openid_client"]["jupyterhub"] for b in module["data"]
                 if "keycloak_openid_client" in b]  # fmt: skip
    assert client["client_id"] == "jupyterhub"
    resources = {kind: spec for block in module["resource"] for kind, spec in block.items()}
    role = resources["keycloak_role"]["mlflow_access"]
    assert role["attributes"] == "${var.role.attributes}"
    assert "jupyterhub" in role["client_id"]
    mapping = resources["keycloak_group_roles"]["mlflow_access"]
    # Adds the role; never removes a group's other roles (Nebari's own roles live there).
    assert mapping["exhaustive"] is False
    assert mapping["for_each"] == "${local.groups}"
    # The root hands it the stage's role and stage 06's realm.
    input_vars = nb.stage_for(config, tmp_path).input_vars(nb.STAGE_OUTPUTS)
    assert input_vars["keycloak_realm_id"] == "nebari"
    assert input_vars["hub_access_role"]["name"] == "allow-access-to-mlflow-role"
    json.dumps(input_vars)
    assert tf.fmt_changes(stage_dir, tmp_path) == []
