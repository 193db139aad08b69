"""The admin's `mlflow.overrides` (Helm values merged last), checked at validation.

Two rules, both applied by `nebari validate` before any stage runs (JupyterHub
is reconfigured by stage 07, long before Helm would see the values):

- the merged values must satisfy the chart's own `values.schema.json` (what Helm
  would check at deploy time), so a misspelt key fails now, naming it;
- some values are not the admin's to override: names that user pods and Traefik
  were already given (the Service in the tracking URI, the route), the login,
  generated secrets, and values that have a first-class `mlflow.*` field (an
  override would silently beat the field). Helm replaces lists, so an override of
  `ingressRoute.middlewares` would drop the login: extra middlewares go to
  `ingressRoute.extraMiddlewares`, extra env to `server.extraEnv`; likewise an
  override of `networkPolicy.allowFrom` must keep every Nebari client (Traefik,
  user pods, Argo, Dask, Prometheus): sources go to `networkPolicy.extraAllowFrom`.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import yaml

from nebari_mlflow_plugin.assets import chart_dir

# Value path -> why it is not overridable and what to use instead.
PROTECTED: dict[tuple[str, ...], str] = {
    ("fullnameOverride",): "user pods were given the Service's name in MLFLOW_TRACKING_URI",
    ("nameOverride",): "the workloads' selector labels cannot change after the first deploy",
    ("chartDigest",): "the plugin sets it",
    ("service", "port"): "user pods were given port 5000 in MLFLOW_TRACKING_URI",
    ("server", "staticPrefix"): "use mlflow.route_path",
    ("server", "allowedHosts"): "the plugin sets the Nebari domain (lists are replaced)",
    ("server", "corsAllowedOrigins"): "the plugin sets https://<domain> (lists are replaced)",
    ("server", "platformEnv"): "the plugin sets it; add variables with server.extraEnv",
    ("server", "workers"): "use mlflow.workers",
    ("server", "podNetworkHosts"): "use mlflow.allowed_hosts_extra",
    ("server", "aiGateway"): "use mlflow.ai_gateway",
    ("server", "cryptoSecret"): "the plugin generates the passphrase Secret",
    ("ingressRoute", "enabled"): "the route is Nebari's way in",
    ("ingressRoute", "host"): "the route is served on the Nebari domain",
    ("ingressRoute", "middlewares"): (
        "it holds Nebari's login (lists are replaced); add middlewares with "
        "ingressRoute.extraMiddlewares"
    ),
    ("image",): "use mlflow.image",
    ("replicaCount",): "use mlflow.replicas",
    ("keepVolumes",): "use mlflow.force_destroy",
    ("database", "mode"): "use mlflow.database.type",
    ("database", "external"): "use mlflow.database.external_secret",
    ("database", "internal", "passwordSecret"): "the plugin generates the password Secret",
    ("artifacts", "destination"): "use mlflow.artifacts (or the provider's own store)",
    ("takeover",): "the plugin sets it while it takes over a 2025.10.x release",
    ("auth", "enabled"): "use mlflow.auth.enabled",
    ("auth", "defaultPermission"): "use mlflow.auth.default_permission",
    ("auth", "cacheSeconds"): "use mlflow.auth.cache_seconds",
    ("auth", "secret"): "the plugin generates the auth Secret",
    ("serverPackage",): "it is the plugin's authorization function and the chart's jobs",
    ("serverPackageMetadata",): "it declares the plugin's server app (nebari-auth)",
}


def _set_paths(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every path the overrides set (maps are walked, anything else is a leaf)."""
    if not isinstance(value, dict) or not value:
        return [prefix]
    return [path for key, item in value.items() for path in _set_paths(item, (*prefix, key))]


def dropped_clients(overrides: dict[str, Any], clients: dict[str, dict]) -> list[str]:
    """Names of `clients` (name -> NetworkPolicy peer: Nebari's clients of MLflow) an
    override of `networkPolicy.allowFrom` leaves out (Helm replaces the list: where
    NetworkPolicy is enforced they would be cut off)."""
    policy = overrides.get("networkPolicy")
    if not isinstance(policy, dict) or "allowFrom" not in policy:
        return []
    allowed = policy["allowFrom"] if isinstance(policy["allowFrom"], list) else []
    return [name for name, peer in clients.items() if peer not in allowed]


def protected_paths(overrides: dict[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """(path set, reason) for each protected value the overrides touch."""
    found = []
    for path in _set_paths(overrides):
        for protected, reason in PROTECTED.items():
            if path[: len(protected)] == protected:
                found.append((protected, reason))
    return sorted(set(found))


@cache
def _chart_schema_and_defaults() -> tuple[dict[str, Any], dict[str, Any]]:
    chart = chart_dir()
    schema = json.loads((chart / "values.schema.json").read_text())
    defaults = yaml.safe_load((chart / "values.yaml").read_text()) or {}
    return schema, defaults


def schema_errors(values: dict[str, Any], overrides: dict[str, Any]) -> list[str]:
    """What Helm's schema check would refuse in the chart defaults + `values` + `overrides`."""
    import jsonschema

    schema, defaults = _chart_schema_and_defaults()
    merged = merge_values(defaults, values, overrides)
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(merged), key=lambda e: list(e.absolute_path))
    return [
        f"{'.'.join(str(p) for p in ('overrides', *error.absolute_path))}: {error.message}"
        for error in errors
    ]


def check(
    overrides: dict[str, Any], values: dict[str, Any], clients: dict[str, dict] | None = None
) -> None:
    """Raise ValueError naming every override the deploy would refuse or that would
    break what pods and Traefik depend on."""
    if not overrides:
        # The plugin's own values always satisfy the chart (every render in the tests
        # goes through Helm's schema check); skip the jsonschema import (~180 ms) that
        # every nebari command would otherwise pay.
        return
    problems = [
        f"overrides.{'.'.join(path)} cannot be overridden: {reason}"
        for path, reason in protected_paths(overrides)
    ]
    dropped = dropped_clients(overrides, clients or {})
    if dropped:
        problems.append(
            f"overrides.networkPolicy.allowFrom replaces the list of who may reach MLflow and "
            f"would cut off {', '.join(dropped)}; add sources with "
            "overrides.networkPolicy.extraAllowFrom instead"
        )
    if not problems:
        problems = schema_errors(values, overrides)
    if problems:
        raise ValueError(
            "mlflow." + "; mlflow.".join(problems) + " (chart values: helm/mlflow/README.md)"
        )


def merge_values(*documents: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of several values files (`-f a -f b`): maps merge, the rest is replaced."""
    merged: dict[str, Any] = {}
    for document in documents:
        merged = _merge(merged, document)
    return merged


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merge(result[key], value)
        else:
            result[key] = value
    return result
