"""Environment and mounts added to every JupyterLab user pod.

Runs inside config validation (see stages/inputs.py): it edits
`jupyterhub.overrides` in place, which stage 07 hands to the JupyterHub chart:
`singleuser.extraEnv` (z2jh accepts a mapping or a list of EnvVar objects; both
are handled) and Nebari's `custom.extra-mounts` (see notebook_delivery). What
the admin already set always wins, except PYTHONPATH, which gets the delivered
package's directory appended.

It also lists MLflow among JupyterHub's services (`hub.services`, which z2jh adds
to `c.JupyterHub.services`), shaped as Nebari lists its own services (Argo,
Monitoring) for jhub-apps' Services menu: `display` plus an external `info.url`.
No `url` key: that would make JupyterHub's proxy serve /services/<name>/ itself,
bypassing Traefik's forward-auth route to MLflow. With auth, the same service is
the OAuth client browsers sign in to MLflow with (server/login.py): its
`oauth_redirect_uri` is under MLflow's route, and `oauth_no_confirm` skips the
hub's "authorize this service" page (an admin-operated service), so a user
signed in to Nebari sees only redirects.
"""

from __future__ import annotations

from typing import Any

from nebari_mlflow_plugin.config import hub_access
from nebari_mlflow_plugin.config.naming import internal_tracking_uri
from nebari_mlflow_plugin.notebook import auth as hub_auth
from nebari_mlflow_plugin.notebook import keeper as hub_keeper
from nebari_mlflow_plugin.notebook import tokens as hub_tokens
from nebari_mlflow_plugin.providers import provider_for
from nebari_mlflow_plugin.providers.base import DOWNLOAD, UPLOAD
from nebari_mlflow_plugin.render import notebook_delivery

# Variables holding a path list: the admin's value is extended, not kept as is.
PATH_LISTS = {"PYTHONPATH"}


# With auth on, each user's own experiment unless the admin chose one: MLflow's shared
# "Default" (and any shared name) is theirs to write only if they created it.
AUTH_USER_EXPERIMENT = "users/{username}"


def user_experiment(mlflow: Any) -> str | None:
    if mlflow.user_experiment is None and mlflow.auth.enabled:
        return AUTH_USER_EXPERIMENT
    return mlflow.user_experiment


# MLflow batches what its asynchronous logging queued for this long (whole seconds; its
# default, unset, sends every call as its own request: 2,000 points took 14.9 s to
# flush at `end_run`); at `end_run` and at exit it sends what is queued at once.
ASYNC_LOGGING_BUFFER_SECONDS = "1"


def async_logging_env(mlflow: Any) -> dict[str, str]:
    """MLflow's asynchronous logging in user pods (`mlflow.notebook.async_logging`)."""
    if not mlflow.notebook.async_logging:
        return {}
    return {
        "MLFLOW_ENABLE_ASYNC_LOGGING": "true",
        "MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS": ASYNC_LOGGING_BUFFER_SECONDS,
    }


# Files from this size move between pods and the store through presigned URLs (MLflow's
# default, 500 MiB, leaves the models most users log on the server's path).
DIRECT_TRANSFER_MIN_BYTES = str(100 * 1024**2)


def direct_transfer_env(config: Any) -> dict[str, str]:
    """MLflow's proxied multipart transfers (`mlflow.artifacts.direct_transfers`), said
    either way: unset, MLflow 3.17's clients turn them on from the server's /server-info
    whenever the store's repository has them, on GCP too, where the server cannot sign."""
    transfers = provider_for(getattr(config, "provider", None) or "local").direct_transfers(config)
    env = {
        "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": str(UPLOAD in transfers).lower(),
        "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": str(DOWNLOAD in transfers).lower(),
    }
    if UPLOAD in transfers:
        env["MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE"] = DIRECT_TRANSFER_MIN_BYTES
    if DOWNLOAD in transfers:
        env["MLFLOW_MULTIPART_DOWNLOAD_MINIMUM_FILE_SIZE"] = DIRECT_TRANSFER_MIN_BYTES
    return env


def user_env(config: Any) -> dict[str, str]:
    """Variables the plugin wants in user pods for this config (empty when off)."""
    mlflow = config.mlflow
    if not (mlflow.enabled and mlflow.inject_env):
        return {}
    env = {
        "MLFLOW_TRACKING_URI": internal_tracking_uri(config.namespace, mlflow.route_path),
        # Read by the notebook run-context provider for the nebari.* run tags.
        "NEBARI_PROJECT": config.project_name,
        "NEBARI_NAMESPACE": config.namespace,
    }
    if mlflow.auth.enabled and notebook_delivery.delivered(mlflow):
        # The delivered package's request auth provider sends the pod's JupyterHub token
        # to this server, and only to it (notebook/auth.py).
        env["MLFLOW_TRACKING_AUTH"] = hub_auth.PROVIDER_NAME
        env[hub_auth.SERVER_ENV] = env["MLFLOW_TRACKING_URI"]
        # What the notebook package's workflow tokens are made with (notebook/tokens.py),
        # and whether JupyterLab servers keep one without being asked (keeper.py).
        env[hub_tokens.SERVICE_ENV] = hub_access.HUB_SERVICE_NAME
        env[hub_tokens.LIFETIME_ENV] = str(mlflow.auth.workflow_token_hours * 3600)
        env[hub_keeper.MODE_ENV] = mlflow.auth.workflow_tokens.value
    env.update(async_logging_env(mlflow))
    if mlflow.notebook.async_logging:
        # The registry MLflow would derive from the tracking URI, named: without it every
        # fluent call (log_metric: two MlflowClient()s) looks for an active Spark session
        # and, with no pyspark installed, re-runs a failed `import pyspark` across
        # sys.path: three quarters of a step (0.126 -> 0.031 ms p50). Code that points
        # MLflow at another tracking server sets the registry too
        # (docs/data-scientists.md#training-loops-dont-wait).
        env["MLFLOW_REGISTRY_URI"] = env["MLFLOW_TRACKING_URI"]
    env.update(direct_transfer_env(config))
    experiment = user_experiment(mlflow)
    if experiment:
        env["MLFLOW_EXPERIMENT_NAME"] = notebook_delivery.readable_user(experiment)
    env.update(notebook_delivery.pod_env(mlflow))
    return env


# Key of our entry in hub.services, and the name shown in the menu.
HUB_SERVICE_KEY = hub_access.HUB_SERVICE_KEY
HUB_SERVICE_NAME = hub_access.HUB_SERVICE_NAME


# The role (hub.loadRoles, which z2jh hands to c.JupyterHub.load_roles) giving the MLflow
# service what its authorization function reads of a user: name, admin flag, groups.
# Nebari's KeyCloakOAuthenticator manages users' roles (manage_roles), which still
# allows roles assigned to services.
HUB_ROLE = "nebari-mlflow-read-users"
HUB_ROLE_DESCRIPTION = "MLflow reads users' admin flag and groups to authorize requests"
HUB_ROLE_SCOPES = ["read:users:name", "read:users:groups"]


# The OAuth client of the service (JupyterHub requires the `service-` prefix); the
# server is told the same id (values.py).
OAUTH_CLIENT_ID = "service-mlflow"
OAUTH_CALLBACK = "/oauth_callback"


def public_base(mlflow: Any) -> str:
    """Where browsers reach MLflow: `<route>` on the Nebari domain (relative, as the hub
    and MLflow share the origin), or `https://<host><route>` on a host of its own."""
    return f"https://{mlflow.host}{mlflow.route_path}" if mlflow.host else mlflow.route_path


def oauth_redirect_uri(mlflow: Any) -> str:
    return f"{public_base(mlflow)}{OAUTH_CALLBACK}"


def hub_service(mlflow: Any) -> dict[str, Any]:
    """The `hub.services` entry linking to MLflow's UI."""
    return {
        "name": HUB_SERVICE_NAME,
        "display": True,
        "info": {"name": HUB_SERVICE_NAME, "url": f"{public_base(mlflow)}/", "external": True},
    }


def _extend_path(current: Any, name: str, entry: str) -> str:
    if not isinstance(current, str):
        raise ValueError(
            f"jupyterhub.overrides.singleuser.extraEnv {name} must be a plain string to "
            f"add {entry} (the notebook package); or set mlflow.notebook.client: false"
        )
    parts = [part for part in current.split(":") if part]
    return current if entry in parts else ":".join([*parts, entry])


def merge_env(extra_env: Any, wanted: dict[str, str]) -> Any:
    """Add `wanted` to a z2jh extraEnv value without replacing what is there.

    Returns the object to store: the same list/dict mutated, or a new dict when
    the value was absent.
    """
    if extra_env is None:
        extra_env = {}
    if isinstance(extra_env, dict):
        for name, value in wanted.items():
            if name in PATH_LISTS and name in extra_env:
                extra_env[name] = _extend_path(extra_env[name], name, value)
            extra_env.setdefault(name, value)
        return extra_env
    if isinstance(extra_env, list):
        present = {item.get("name"): item for item in extra_env if isinstance(item, dict)}
        for name, value in wanted.items():
            if name not in present:
                extra_env.append({"name": name, "value": value})
            elif name in PATH_LISTS:
                item = present[name]
                item["value"] = _extend_path(item.get("value"), name, value)
        return extra_env
    raise ValueError(
        "jupyterhub.overrides.singleuser.extraEnv must be a mapping of NAME: value or a "
        f"list of {{name, value}} entries, not {type(extra_env).__name__}"
    )


def _mapping(parent: dict, key: str, where: str) -> dict:
    value = parent.get(key)
    if value is None:
        value = parent[key] = {}
    if not isinstance(value, dict):
        raise ValueError(f"jupyterhub.overrides.{where} must be a mapping")
    return value


def add_hub_service(config: Any) -> None:
    """List MLflow in JupyterHub's services (an admin's `hub.services.mlflow` wins)."""
    jupyterhub = getattr(config, "jupyterhub", None)
    if not config.mlflow.enabled or jupyterhub is None:
        return
    services = _mapping(_mapping(jupyterhub.overrides, "hub", "hub"), "services", "hub.services")
    services.setdefault(HUB_SERVICE_KEY, hub_service(config.mlflow))
    if config.mlflow.auth.enabled:
        service = services[HUB_SERVICE_KEY]
        service.setdefault("oauth_client_id", OAUTH_CLIENT_ID)
        service.setdefault("oauth_redirect_uri", oauth_redirect_uri(config.mlflow))
        service.setdefault("oauth_no_confirm", True)
        # The server reads users' admin flag and groups with this service's token
        # (z2jh generates it into its Secret `hub`): only that, through this role.
        # z2jh names the service by its entry's `name` (the key only when absent).
        name = services[HUB_SERVICE_KEY].get("name", HUB_SERVICE_KEY)
        roles = _mapping(jupyterhub.overrides["hub"], "loadRoles", "hub.loadRoles")
        roles.setdefault(HUB_ROLE, {"description": HUB_ROLE_DESCRIPTION,
                                    "scopes": HUB_ROLE_SCOPES, "services": [name]})  # fmt: skip


def inject_user_pods(config: Any) -> None:
    """Add the plugin's env and mounts to `jupyterhub.overrides` (idempotent)."""
    wanted = user_env(config)
    jupyterhub = getattr(config, "jupyterhub", None)
    if not wanted or jupyterhub is None:
        return
    overrides = jupyterhub.overrides
    singleuser = _mapping(overrides, "singleuser", "singleuser")
    singleuser["extraEnv"] = merge_env(singleuser.get("extraEnv"), wanted)
    mounts = notebook_delivery.extra_mounts(config.mlflow, config.namespace)
    if mounts:
        extra_mounts = _mapping(_mapping(overrides, "custom", "custom"), "extra-mounts",
                                "custom.extra-mounts")  # fmt: skip
        for path, volume in mounts.items():
            extra_mounts.setdefault(path, volume)


# Where z2jh takes traitlets config from (`hub.config.<Class>.<trait>`); KubeSpawner
# (and jhub-apps' spawner, its subclass) read `Spawner` settings unless a more specific
# class sets its own.
SPAWNER_CLASSES = ("Spawner", "KubeSpawner")


def add_server_token_scopes(config: Any) -> None:
    """Pods' JUPYTERHUB_API_TOKEN carries MLflow's access scope (and may mint workflow
    tokens): `hub.config.Spawner.server_token_scopes`, unless the admin set it (on
    Spawner or KubeSpawner); their list then decides (docs/admin/auth.md#credentials)."""
    jupyterhub = getattr(config, "jupyterhub", None)
    mlflow = config.mlflow
    if jupyterhub is None or not (mlflow.enabled and mlflow.auth.enabled):
        return
    hub_config = _mapping(_mapping(jupyterhub.overrides, "hub", "hub"), "config", "hub.config")
    for cls in SPAWNER_CLASSES:
        section = hub_config.get(cls)
        if isinstance(section, dict) and "server_token_scopes" in section:
            return
    spawner = _mapping(hub_config, "Spawner", "hub.config.Spawner")
    spawner["server_token_scopes"] = hub_access.server_token_scopes()
