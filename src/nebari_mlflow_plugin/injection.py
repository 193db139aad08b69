"""Environment and mounts added to every JupyterLab user pod.

Runs inside config validation (see schema.InputSchema): it edits
`jupyterhub.overrides` in place, which stage 07 hands to the JupyterHub chart:
`singleuser.extraEnv` (z2jh accepts a mapping or a list of EnvVar objects; both
are handled) and Nebari's `custom.extra-mounts` (see notebook_delivery). What
the admin already set always wins, except PYTHONPATH, which gets the delivered
package's directory appended.
"""

from __future__ import annotations

from typing import Any

from nebari_mlflow_plugin import notebook_delivery
from nebari_mlflow_plugin.naming import internal_tracking_uri

# Variables holding a path list: the admin's value is extended, not kept as is.
PATH_LISTS = {"PYTHONPATH"}


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
    if mlflow.user_experiment:
        env["MLFLOW_EXPERIMENT_NAME"] = notebook_delivery.readable_user(mlflow.user_experiment)
    env.update(notebook_delivery.pod_env(mlflow))
    return env


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
