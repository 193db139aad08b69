"""Environment added to every JupyterLab user pod.

Runs inside config validation (see schema.InputSchema): it edits
`jupyterhub.overrides.singleuser.extraEnv` in place, which stage 07 hands to the
JupyterHub chart. z2jh accepts extraEnv as a mapping or as a list of EnvVar
objects; both are handled, and a variable the admin already set always wins.
"""

from __future__ import annotations

from typing import Any

from nebari_mlflow_plugin.naming import internal_tracking_uri


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
        env["MLFLOW_EXPERIMENT_NAME"] = mlflow.user_experiment
    return env


def merge_env(extra_env: Any, wanted: dict[str, str]) -> Any:
    """Add `wanted` to a z2jh extraEnv value without replacing what is there.

    Returns the object to store: the same list/dict mutated, or a new dict when
    the value was absent.
    """
    if extra_env is None:
        extra_env = {}
    if isinstance(extra_env, dict):
        for name, value in wanted.items():
            extra_env.setdefault(name, value)
        return extra_env
    if isinstance(extra_env, list):
        present = {item.get("name") for item in extra_env if isinstance(item, dict)}
        extra_env.extend(
            {"name": name, "value": value} for name, value in wanted.items() if name not in present
        )
        return extra_env
    raise ValueError(
        "jupyterhub.overrides.singleuser.extraEnv must be a mapping of NAME: value or a "
        f"list of {{name, value}} entries, not {type(extra_env).__name__}"
    )


def inject_user_env(config: Any) -> None:
    wanted = user_env(config)
    jupyterhub = getattr(config, "jupyterhub", None)
    if not wanted or jupyterhub is None:
        return
    overrides = jupyterhub.overrides
    singleuser = overrides.get("singleuser")
    if singleuser is None:
        singleuser = overrides["singleuser"] = {}
    if not isinstance(singleuser, dict):
        raise ValueError("jupyterhub.overrides.singleuser must be a mapping")
    singleuser["extraEnv"] = merge_env(singleuser.get("extraEnv"), wanted)
