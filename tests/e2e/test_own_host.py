"""`mlflow.host`: MLflow on a host of its own (mlflow.<domain>), another origin than the
users' servers and apps under https://<domain>/user/.

The deployment rendered with `host`, behind nginx as Traefik serving both names
(MLflow's host; the domain with the hub and the login); sign-in through the real
hub's OAuth across the two hosts; TLS on the host's own name.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.parse
import uuid

import pytest
from support import cluster_dns
from support import nebari as nb
from support.browser import missing_browser_tools, run_journey, self_signed
from support.deployment import MLFLOW_BIN, REPO, missing_tools, running_deployment
from support.forward_auth import DEFAULT_USER
from support.mlflow_server import free_port
from support.nginx import Nginx, Tls
from support.signin import signed_in

from nebari_mlflow_plugin.server import login

pytestmark = pytest.mark.slow

DOMAIN = "nebari.example.com"
HOST = f"mlflow.{DOMAIN}"
JSON = {"Accept": "application/json", "Content-Type": "application/json"}

SEARCH = """
import mlflow, sys
print(len(mlflow.MlflowClient(sys.argv[1]).search_experiments(max_results=5)))
"""


@pytest.fixture(scope="module")
def own_host(tmp_path_factory):
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    config = nb.validate(nb.config_dict("local", {"workers": 1, "host": HOST}))
    with running_deployment(tmp_path_factory.mktemp("own-host"), config) as dep:
        yield dep


def test_signing_in_crosses_to_the_hub_on_the_domain_and_back(own_host):
    assert own_host.nginx.route.host == HOST
    browser = signed_in(own_host, "alice")
    hosts = [urllib.parse.urlsplit(hop.url).hostname for hop in browser.hops]
    assert hosts[0] == HOST and hosts[-1] == HOST and DOMAIN in hosts
    (callback,) = [h for h in browser.hops if login.CALLBACK_PATH in h.url]
    assert urllib.parse.urlsplit(callback.url).hostname == HOST
    (set_cookie,) = [c for c in callback.set_cookies() if c.startswith(login.SESSION_COOKIE)]
    assert "domain=" not in set_cookie.lower()  # that host's alone
    assert login.SESSION_COOKIE not in browser.cookies.get(DOMAIN, {})
    prefix = own_host.config.mlflow.route_path
    hop = browser.request("GET", f"{prefix}/ajax-api/2.0/mlflow/users/current", JSON)
    assert hop.status == 200 and json.loads(hop.body)["user"]["username"] == "alice"


def test_pages_of_the_domain_cannot_write_with_a_visitors_session(own_host):
    """A script in a user's server (https://<domain>/user/...) posting to MLflow with the
    visitor's session: refused; the UI on MLflow's own origin: allowed."""
    browser = signed_in(own_host, "bob")
    create = f"{own_host.config.mlflow.route_path}/ajax-api/2.0/mlflow/experiments/create"
    body = json.dumps({"name": f"from-a-user-page-{uuid.uuid4().hex[:6]}"}).encode()
    hop = browser.request("POST", create, {**JSON, "Origin": f"https://{DOMAIN}"}, body)
    assert hop.status == 403, hop.body[:200]
    hop = browser.request("POST", create, {**JSON, "Origin": f"https://{HOST}"}, body)
    assert hop.status == 200, hop.body[:200]


def test_the_host_is_served_with_tls_under_its_own_name(own_host, tmp_path):
    """An API client at https://mlflow.<domain>/mlflow: the certificate is the host's (SNI,
    verified), the API route takes its token without a login redirect."""
    route = own_host.nginx.route
    tls = self_signed(tmp_path / "tls", HOST, DOMAIN)
    tls = Tls(tls.cert, tls.key, port=free_port())
    with Nginx(tmp_path / "nginx", route, own_host.server_port, own_host.nginx.auth_port,
               tls=tls, hub_port=own_host.hub.port, domain=DOMAIN):  # fmt: skip
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("MLFLOW_", "JUPYTERHUB_", "PYTHONPATH"))}  # fmt: skip
        env.update(cluster_dns.client_env(tmp_path, {f"{HOST}:443": tls.port}),
                   MLFLOW_TRACKING_SERVER_CERT_PATH=str(tls.cert),
                   MLFLOW_TRACKING_TOKEN=own_host.tokens["dana"])  # fmt: skip
        url = f"https://{HOST}{own_host.config.mlflow.route_path}"
        result = subprocess.run([str(MLFLOW_BIN / "python"), "-c", SEARCH, url], env=env,
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        assert int(result.stdout.split()[-1]) >= 1  # Default


def test_a_real_browser_signs_in_on_the_host_of_its_own(own_host, tmp_path):
    """Chromium at https://mlflow.<domain>/mlflow/ (port 443, the names on loopback):
    Keycloak's stand-in, then the hub on the domain, then back with MLflow's session,
    scoped to MLflow's host and route, and the UI shows who is signed in."""
    reason = missing_browser_tools()
    if reason:
        pytest.skip(reason)
    route = own_host.nginx.route
    tls = self_signed(tmp_path / "tls", HOST, DOMAIN)
    with Nginx(tmp_path / "nginx", route, own_host.server_port, own_host.nginx.auth_port,
               tls=tls, hub_port=own_host.hub.port, domain=DOMAIN):  # fmt: skip
        screenshots = REPO / "test-artifacts"
        screenshots.mkdir(exist_ok=True)
        result = run_journey({
            "origin": f"https://{HOST}", "otherHosts": [DOMAIN],
            "prefix": own_host.config.mlflow.route_path, "sessionCookie": login.SESSION_COOKIE,
            "user": DEFAULT_USER, "screenshots": str(screenshots), "tolerated": [],
            "stopAfter": "signed-in-as",
        })  # fmt: skip
    assert result.failure() is None, result.failure()
    assert result.steps() == ["login", "signed-in-as"]
