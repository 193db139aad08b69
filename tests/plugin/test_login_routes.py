"""What the config renders for browser sign-in, API clients and network sources:
the IngressRoute's two routes, a host of MLflow's own, the hub service as OAuth
client, `networkPolicy.extraAllowFrom`, and overrides that would cut clients off.

Rendered as `nebari deploy` would (stage -> Terraform's values -> Helm); Traefik
objects validated against the Traefik 2 CRDs, the rest with kubernetes-validate.
"""

from __future__ import annotations

import re

import jsonschema
import kubernetes_validate
import pydantic
import pytest
from support import nebari as nb
from support.crds import TRAEFIK_CRDS, crd_schemas
from support.deployment import render, server_container, server_deployment
from support.release import find

from nebari_mlflow_plugin.render.values import NEBARI_CLIENTS

DOMAIN = "nebari.example.com"
CI = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ci"}}}


def rendered(tmp_path, **mlflow):
    config = nb.validate(nb.config_dict("local", mlflow))
    return config, render(config, tmp_path).manifests


def env_of(manifests) -> dict[str, str]:
    container = server_container(server_deployment(manifests))
    return {e["name"]: e.get("value") for e in container["env"]}


def args_of(manifests) -> dict[str, str]:
    args = server_container(server_deployment(manifests))["args"]
    return {a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--")}


def routes_of(manifests) -> list[dict]:
    (route,) = find(manifests, "IngressRoute")
    return route["spec"]["routes"]


def middleware_names(route: dict) -> list[str]:
    return [m["name"] for m in route.get("middlewares", [])]


def header_regex(route: dict) -> str | None:
    found = re.search(r"HeadersRegexp\(`Authorization`, `([^`]+)`\)", route["match"])
    return found.group(1) if found else None


def validate_traefik(manifests) -> None:
    schemas = crd_schemas(TRAEFIK_CRDS)
    for obj in manifests:
        if obj["apiVersion"].startswith("traefik.containo.us/"):
            jsonschema.validate(obj, schemas[(obj["apiVersion"], obj["kind"])])


@pytest.fixture(scope="module")
def path_mode(tmp_path_factory):
    return rendered(tmp_path_factory.mktemp("path"))


@pytest.fixture(scope="module")
def host_mode(tmp_path_factory):
    return rendered(tmp_path_factory.mktemp("host"), host=f"mlflow.{DOMAIN}")


def test_api_clients_have_a_route_without_the_login_and_browsers_keep_it(path_mode):
    _, manifests = path_mode
    validate_traefik(manifests)
    forward_auth = nb.STAGE_OUTPUTS["stages/07-kubernetes-services"]["forward-auth-middleware"]
    login_name = forward_auth["value"]["name"]
    browsers, api = routes_of(manifests)
    assert login_name in middleware_names(browsers)
    assert login_name not in middleware_names(api)
    # Same host and paths, plus the header: Traefik prefers the longer rule.
    assert api["match"].startswith(browsers["match"] + " && ")
    assert len(api["match"]) > len(browsers["match"])
    assert api["services"] == browsers["services"]
    # Traefik's regexp (Go RE2) reads this as Python does: credentials, not their absence.
    regex = re.compile(header_regex(api))
    for value in ("Bearer abc", "bearer abc", "token abc", "Basic Zm9vOmJhcg=="):
        assert regex.search(value), value
    for value in ("", "Bearer", "Negotiate abc", "xBearer abc"):
        assert not regex.search(value), value


def test_without_auth_there_is_no_api_route_and_no_sign_in(tmp_path):
    config, manifests = rendered(tmp_path, auth={"enabled": False})
    (route,) = routes_of(manifests)
    assert header_regex(route) is None
    assert not [name for name in env_of(manifests) if "OAUTH" in name]
    service = config.jupyterhub.overrides["hub"]["services"]["mlflow"]
    assert not [key for key in service if key.startswith("oauth")]


def test_the_server_signs_browsers_in_as_the_hub_service_registered(path_mode):
    config, manifests = path_mode
    env = env_of(manifests)
    service = config.jupyterhub.overrides["hub"]["services"]["mlflow"]
    assert env["NEBARI_MLFLOW_OAUTH_CLIENT_ID"] == service["oauth_client_id"]
    assert service["oauth_client_id"].startswith("service-")  # JupyterHub requires it
    assert env["NEBARI_MLFLOW_OAUTH_REDIRECT_URI"] == service["oauth_redirect_uri"]
    route = config.mlflow.route_path
    assert service["oauth_redirect_uri"] == f"{route}/oauth_callback"  # same origin: relative
    assert service["oauth_no_confirm"] is True  # a signed-in user sees no prompt
    assert env["NEBARI_MLFLOW_OAUTH_AUTHORIZE_URL"] == f"https://{DOMAIN}/hub/api/oauth2/authorize"
    # The service's API token is the OAuth client secret: it comes from z2jh's Secret.
    container = server_container(server_deployment(manifests))
    (token,) = [e for e in container["env"] if e["name"] == "NEBARI_MLFLOW_HUB_TOKEN"]
    assert "secretKeyRef" in token["valueFrom"]


def test_a_host_of_its_own_is_another_origin(host_mode):
    config, manifests = host_mode
    validate_traefik(manifests)
    host = f"mlflow.{DOMAIN}"
    for route in routes_of(manifests):
        assert route["match"].startswith(f"Host(`{host}`) && ")
    args = args_of(manifests)
    # Pages of the Nebari domain (users' servers and apps) are not an allowed origin.
    assert args["--cors-allowed-origins"] == f"https://{host}"
    assert DOMAIN not in args["--allowed-hosts"].split(",")
    assert host in args["--allowed-hosts"].split(",")
    service = config.jupyterhub.overrides["hub"]["services"]["mlflow"]
    redirect = f"https://{host}{config.mlflow.route_path}/oauth_callback"
    assert service["oauth_redirect_uri"] == env_of(manifests)["NEBARI_MLFLOW_OAUTH_REDIRECT_URI"]
    assert service["oauth_redirect_uri"] == redirect
    assert service["info"]["url"] == f"https://{host}{config.mlflow.route_path}/"
    # The hub (and its sign-in) stays on the domain.
    assert env_of(manifests)["NEBARI_MLFLOW_OAUTH_AUTHORIZE_URL"].startswith(f"https://{DOMAIN}/")


@pytest.mark.parametrize("host", [DOMAIN, "MLflow.Example.com", "mlflow", "a..b.com", "-x.b.com"])
def test_a_host_that_is_not_one_of_its_own_is_refused(host):
    with pytest.raises(pydantic.ValidationError, match=r"mlflow\.host"):
        nb.validate(nb.config_dict("local", {"host": host}))


def test_extra_sources_are_added_to_nebaris_clients(tmp_path):
    _, manifests = rendered(tmp_path, overrides={"networkPolicy": {"extraAllowFrom": [CI]}})
    (policy,) = find(manifests, "NetworkPolicy", "mlflow")
    kubernetes_validate.validate(policy, "1.31", strict=True)
    (rule,) = policy["spec"]["ingress"]
    for name, peer in NEBARI_CLIENTS.items():
        assert peer in rule["from"], name
    assert CI in rule["from"]


def test_an_override_replacing_the_sources_is_refused_naming_who_it_cuts_off():
    with pytest.raises(pydantic.ValidationError) as refused:
        nb.validate(nb.config_dict("local", {"overrides": {"networkPolicy": {"allowFrom": [CI]}}}))
    message = str(refused.value)
    assert "overrides.networkPolicy.allowFrom" in message
    assert "extraAllowFrom" in message
    for name in ("Traefik", "user pods", "Argo workflows", "Prometheus"):
        assert name in message
    # Keeping every client (and adding one) is the admin's to do.
    kept = [*NEBARI_CLIENTS.values(), CI]
    nb.validate(nb.config_dict("local", {"overrides": {"networkPolicy": {"allowFrom": kept}}}))
    without_prometheus = [p for n, p in NEBARI_CLIENTS.items() if n != "Prometheus"]
    with pytest.raises(pydantic.ValidationError, match=r"cut off Prometheus;"):
        nb.validate(
            nb.config_dict(
                "local", {"overrides": {"networkPolicy": {"allowFrom": without_prometheus}}}
            )
        )
