"""The operate settings through nebari's combined config class: MLflow in JupyterHub's
services menu, the gc block and what it hands the chart."""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path

import _nebari.stages.kubernetes_services as kubernetes_services
import pydantic
import pytest
from support import nebari as nb
from support.release import find, render_release

from nebari_mlflow_plugin.providers import provider_for
from nebari_mlflow_plugin.render.values import build_values

JUPYTERHUB_FILES = (
    Path(kubernetes_services.__file__).parent
    / "template/modules/kubernetes/services/jupyterhub/files/jupyterhub"
)


@pytest.fixture(autouse=True)
def _offline_cloud(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)


def nebari_service_entry():
    """`service_for_jhub_apps` from the 02-spawner.py nebari ships: how Nebari lists its
    own services (Argo, Monitoring, ...) for jhub-apps' Services menu."""
    tree = ast.parse((JUPYTERHUB_FILES / "02-spawner.py").read_text())
    (func,) = [n for n in ast.walk(tree)
               if isinstance(n, ast.FunctionDef) and n.name == "service_for_jhub_apps"]  # fmt: skip
    namespace: dict = {}
    exec(compile(ast.Module(body=[func], type_ignores=[]), "02-spawner.py", "exec"), namespace)
    return namespace["service_for_jhub_apps"]


def hub_services(config) -> list[dict]:
    """`c.JupyterHub.services` from the overrides stage 07 hands the JupyterHub chart:
    nebari's values JSON-encoded, Helm's map merge, then z2jh's `hub.services` loading
    (a mapping of entries, each named by its key unless it names itself)."""
    overrides = json.loads(json.dumps(config.jupyterhub.overrides))
    nebari_own = {"conda-store": {"name": "conda-store", "admin": True, "api_token": "x"}}
    services = {**nebari_own, **overrides.get("hub", {}).get("services", {})}
    return [{"name": key, **copy.deepcopy(entry)} for key, entry in services.items()]


def rendered_route_prefix(config, tmp_path) -> str:
    manifests = render_release(nb.stage_for(config, tmp_path), nb.STAGE_OUTPUTS)
    (route,) = find(manifests, "IngressRoute")
    (rule,) = route["spec"]["routes"]
    return rule["match"].split("PathPrefix(`")[1].split("`")[0]


@pytest.mark.parametrize("route_path", ["/mlflow", "/tracking"])
def test_mlflow_is_listed_like_nebaris_own_services(tmp_path, route_path):
    config = nb.validate(nb.config_dict(mlflow={"route_path": route_path},
                                        jhub_apps={"enabled": True}))  # fmt: skip
    ours = [s for s in hub_services(config) if s.get("info", {}).get("name") == "MLflow"]
    assert len(ours) == 1
    (entry,) = ours
    # The shape Nebari gives Argo or Monitoring (jhub-apps shows `info`, JupyterHub `display`).
    assert entry == nebari_service_entry()(name="MLflow", url=entry["info"]["url"])
    # No `url`: JupyterHub's proxy must not serve /services/... itself (no forward-auth).
    assert "url" not in entry and "command" not in entry
    # The link leads to the route Traefik serves (behind Keycloak).
    prefix = rendered_route_prefix(config, tmp_path)
    assert entry["info"]["url"].startswith(prefix)
    assert prefix.rstrip("/") == route_path


def test_admin_services_and_an_admin_mlflow_entry_win():
    admin_entry = {"name": "Tracking", "display": False}
    other = {"name": "my-service", "url": "http://x:8000"}
    data = nb.config_dict(
        jupyterhub={"overrides": {"hub": {"services": {"mlflow": admin_entry, "mine": other}}}}
    )
    services = nb.validate(data).jupyterhub.overrides["hub"]["services"]
    assert services == {"mlflow": admin_entry, "mine": other}


def test_menu_link_is_idempotent_and_absent_when_disabled():
    config = nb.validate(nb.config_dict())
    again = nb.validate(config.model_dump(by_alias=True, mode="json"))
    assert (
        again.jupyterhub.overrides["hub"]["services"]
        == (config.jupyterhub.overrides["hub"]["services"])
    )
    assert len(hub_services(again)) == 2
    off = nb.validate(nb.config_dict(mlflow={"enabled": False}))
    assert "services" not in off.jupyterhub.overrides.get("hub", {})


def test_menu_link_needs_no_user_pod_injection():
    config = nb.validate(nb.config_dict(mlflow={"inject_env": False}))
    assert "mlflow" in config.jupyterhub.overrides["hub"]["services"]


def test_services_that_are_not_a_mapping_are_explained():
    data = nb.config_dict(jupyterhub={"overrides": {"hub": {"services": ["mlflow"]}}})
    with pytest.raises(pydantic.ValidationError) as err:
        nb.validate(data)
    assert "jupyterhub.overrides.hub.services must be a mapping" in str(err.value)


INVALID_GC = [
    ({"schedule": "daily"}, "mlflow.gc.schedule"),
    ({"schedule": "0 3 * *"}, "mlflow.gc.schedule"),
    ({"older_than": "30 days"}, "mlflow.gc.older_than"),
    ({"older_than": "1h30d"}, "mlflow.gc.older_than"),
    ({"older_than": ""}, "mlflow.gc.older_than"),
    ({"enabled": "maybe"}, "mlflow.gc.enabled"),
    ({"keep": 3}, "mlflow.gc.keep"),
]


@pytest.mark.parametrize(("gc", "field"), INVALID_GC, ids=[str(g) for g, _ in INVALID_GC])
def test_invalid_gc_settings_name_the_field(gc, field):
    with pytest.raises(pydantic.ValidationError) as err:
        nb.validate(nb.config_dict(mlflow={"gc": gc}))
    assert field in str(err.value)


def test_gc_is_off_by_default_and_reaches_the_chart(tmp_path):
    default = nb.validate(nb.config_dict())
    assert build_values(default.mlflow, provider_for(default.provider))["gc"]["enabled"] is False
    gc = {"enabled": True, "schedule": "@weekly", "older_than": "0s"}
    config = nb.validate(nb.config_dict(mlflow={"gc": gc}))
    manifests = render_release(nb.stage_for(config, tmp_path), nb.STAGE_OUTPUTS)
    (cronjob,) = find(manifests, "CronJob", "mlflow-gc")
    assert cronjob["spec"]["schedule"] == gc["schedule"]
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["command"][-1] == gc["older_than"]
