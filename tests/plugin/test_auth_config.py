"""`mlflow.auth`: the config block, what it renders, and the ini the server reads."""

from __future__ import annotations

import configparser
import subprocess
from pathlib import Path

import pydantic
import pytest
from support import nebari as nb
from support.deployment import containers_of, render, server_container, server_deployment
from support.podrun import local_container
from support.release import find, render_release

from nebari_mlflow_plugin.cli import preview
from nebari_mlflow_plugin.render.injection import user_env

SERVER_PACKAGE = Path(__file__).resolve().parents[2] / "src/nebari_mlflow_plugin/server"


def rendered(tmp_path: Path, auth: dict | None = None):
    block = {"auth": auth} if auth is not None else {}
    config = nb.validate(nb.config_dict("local", block))
    return config, render(config, tmp_path)


def env_names(container: dict) -> set[str]:
    return {item["name"] for item in container.get("env") or []}


def test_auth_is_on_by_default_with_read(tmp_path):
    config, release = rendered(tmp_path)
    assert config.mlflow.auth.enabled and config.mlflow.auth.default_permission.value == "READ"
    deployment = server_deployment(release.manifests)
    server = server_container(deployment)
    args = server["args"]
    # MLflow's basic-auth app, artifacts streamed under the prefix (server/asgi.py).
    assert args[args.index("--app-name") + 1] == "nebari-auth"
    init, _ = containers_of(deployment)
    names = [c["name"] for c in init]
    # After the schema migration (the database is up), right before the server.
    assert names[-2:] == ["migrate-database", "auth-config"]
    # Secrets come from Secrets, never inline values.
    env = {item["name"]: item for item in server["env"]}
    for name in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY",
                 "NEBARI_MLFLOW_HUB_TOKEN"):  # fmt: skip
        assert "value" not in env[name] and "secretKeyRef" in env[name]["valueFrom"], name
    hub_token = env["NEBARI_MLFLOW_HUB_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert hub_token == {"name": "hub", "key": "hub.services.mlflow.apiToken"}  # z2jh's Secret
    assert env["NEBARI_MLFLOW_HUB_API"]["value"] == "http://hub.dev.svc:8081/hub/api"
    # Browsers sign in through the hub's OAuth (the domain's hub, the route's callback);
    # the server never asks forward-auth about a cookie.
    assert env["NEBARI_MLFLOW_OAUTH_AUTHORIZE_URL"]["value"] == (
        f"https://{config.domain}/hub/api/oauth2/authorize"
    )
    assert env["NEBARI_MLFLOW_OAUTH_REDIRECT_URI"]["value"] == "/mlflow/oauth_callback"
    assert not any("FORWARD" in name for name in env)
    # z2jh's hub NetworkPolicy admits only pods with this label.
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["hub.jupyter.org/network-access-hub"] == "true"
    # The authorization function's package is delivered whole, as the files of server/,
    # with the dist-info that names its app (mounted beside the package), and the server
    # imports it from there.
    (package,) = find(release.manifests, "ConfigMap", "mlflow-server-package")
    assert set(package["data"]) == {p.name for p in SERVER_PACKAGE.glob("*.py")} | {
        "METADATA", "entry_points.txt", "top_level.txt"}  # fmt: skip
    mounts = {m["mountPath"]: m for m in server["volumeMounts"]}
    assert mounts[env["PYTHONPATH"]["value"]]["readOnly"] is True
    # The server's NetworkPolicy restricts ingress only: it reaches the hub.
    (policy,) = find(release.manifests, "NetworkPolicy", "mlflow")
    assert policy["spec"]["policyTypes"] == ["Ingress"]


def test_the_gc_job_authenticates_as_the_built_in_admin(tmp_path):
    config = nb.validate(nb.config_dict("local", {"gc": {"enabled": True}}))
    release = render(config, tmp_path)
    (cronjob,) = find(release.manifests, "CronJob", "mlflow-gc")
    (job,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in job["env"]}
    assert env["MLFLOW_TRACKING_USERNAME"]["value"] == "mlflow-admin"
    assert env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "admin-password"


def test_off_is_todays_server(tmp_path):
    config, release = rendered(tmp_path, {"enabled": False})
    deployment = server_deployment(release.manifests)
    assert "--app-name" not in server_container(deployment)["args"]
    assert "auth-config" not in [c["name"] for c in containers_of(deployment)[0]]
    # The server package reaches the jobs (test_no_inline_scripts.py), not the server.
    server = server_container(deployment)
    assert "PYTHONPATH" not in env_names(server)
    assert "server-package" not in [m["name"] for m in server["volumeMounts"]]
    assert "MLFLOW_TRACKING_AUTH" not in user_env(config)
    assert "MLFLOW_EXPERIMENT_NAME" not in user_env(config)  # MLflow's Default, as before
    assert "loadRoles" not in config.jupyterhub.overrides["hub"]


def test_the_hub_service_gets_a_role_reading_users_only():
    config = nb.validate(nb.config_dict("local"))
    hub = config.jupyterhub.overrides["hub"]
    (role,) = hub["loadRoles"].values()
    assert role["scopes"] == ["read:users:name", "read:users:groups"]
    # z2jh names the service by its entry's name; the role must name the same.
    assert role["services"] == [hub["services"]["mlflow"]["name"]]
    env = user_env(config)
    assert env["MLFLOW_TRACKING_AUTH"] == "nebari-jupyterhub"
    # Runs go to the user's own experiment (MLflow's shared Default is read-only to them).
    assert env["MLFLOW_EXPERIMENT_NAME"] == "users/{unescaped_username}"
    assert env["NEBARI_MLFLOW_SERVER"] == env["MLFLOW_TRACKING_URI"]


@pytest.mark.parametrize(
    ("auth", "field", "allowed"),
    [
        ({"default_permission": "MANAGE"}, "default_permission", "NO_PERMISSIONS"),
        ({"default_permission": "read"}, "default_permission", "EDIT"),
        ({"cache_seconds": 1}, "cache_seconds", "5"),
        ({"cache_seconds": 3600}, "cache_seconds", "600"),
        ({"enable": True}, "enable", "Extra inputs"),
    ],
)
def test_bad_auth_settings_are_refused_naming_the_field(auth, field, allowed):
    with pytest.raises(pydantic.ValidationError) as err:
        nb.validate(nb.config_dict("local", {"auth": auth}))
    message = str(err.value)
    assert f"mlflow.auth.{field}" in message and allowed in message, message


ADMIN_SCRIPT = """
import sys
from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore
store = SqlAlchemyStore()
store.init_db(sys.argv[1])
if sys.argv[2] == "create":
    store.create_user("mlflow-admin", "the-old-deployments-password", is_admin=True)
else:
    print(store.authenticate_user("mlflow-admin", sys.argv[3]))
"""


@pytest.mark.slow
def test_the_ini_keeps_the_uri_and_the_admin_gets_this_deployments_password(tmp_path):
    """The init container writes the ini MLflow reads with configparser's interpolation:
    a password with `%` (URL-encoded, as an external URI may have it) must survive. A
    database that already holds the built-in admin (restored from a backup, or kept from
    an earlier release) gets the password of this deployment's Secret."""
    from urllib.parse import quote

    from support.deployment import MLFLOW_BIN, project_config_maps, run_container
    from support.postgres import Postgres, postgres_bin_dir

    if postgres_bin_dir() is None:
        pytest.skip("PostgreSQL not installed")
    config = nb.validate(nb.config_dict("local", {"database": {
        "type": "external", "external_secret": {"name": "db", "key": "uri"}}}))  # fmt: skip
    manifests = render_release(nb.stage_for(config, tmp_path / "stage"), nb.STAGE_OUTPUTS)
    (init,) = [
        c for c in containers_of(server_deployment(manifests))[0] if c["name"] == "auth-config"
    ]
    with Postgres(tmp_path / "pg", password="p@ss%word") as postgres:
        uri = postgres.uri.replace("p@ss%word", quote("p@ss%word", safe=""))
        secret = init["env"][[e["name"] for e in init["env"]].index("MLFLOW_AUTH_ADMIN_PASSWORD")]
        secrets = {"db": {"uri": uri}, secret["valueFrom"]["secretKeyRef"]["name"]: {
            "admin-password": "this-deployments-password"}}  # fmt: skip
        pod = server_deployment(manifests)["spec"]["template"]["spec"]
        project_config_maps(manifests, pod, tmp_path / "pod" / "volumes")  # the server package
        local = local_container(init, workdir=tmp_path / "pod", executables={}, secrets=secrets)
        python = str(MLFLOW_BIN / "python")
        subprocess.run([python, "-c", ADMIN_SCRIPT, uri, "create"], check=True, timeout=120)
        result = run_container(local, tmp_path, timeout=120)  # with the image's python3
        assert result.returncode == 0, result.stderr
        ini = Path(local.env["MLFLOW_AUTH_CONFIG_PATH"])
        assert oct(ini.stat().st_mode & 0o777) == "0o600"
        parser = configparser.ConfigParser()  # as mlflow.server.auth.config reads it
        parser.read(ini)
        assert parser["mlflow"]["database_uri"] == uri
        assert parser["mlflow"]["default_permission"] == "READ"
        assert (
            parser["mlflow"]["authorization_function"] == "nebari_mlflow_server.auth:authenticate"
        )
        assert "admin_password" not in parser["mlflow"]  # the password stays in its Secret
        for password, works in (("this-deployments-password", "True"),
                                ("the-old-deployments-password", "False")):  # fmt: skip
            argv = [python, "-c", ADMIN_SCRIPT, uri, "check", password]
            check = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
            assert check.stdout.strip() == works, password


def test_render_shows_the_auth_mode(tmp_path):
    on = preview.Preview(nb.validate(nb.config_dict("local")), tmp_path).summary()
    assert "default permission READ" in on["authentication"]
    off = nb.validate(nb.config_dict("local", {"auth": {"enabled": False}}))
    assert preview.Preview(off, tmp_path).summary()["authentication"].startswith("OFF")
