"""Browsers sign in to MLflow with a credential meant for MLflow; API clients outside
the cluster come in through Traefik with theirs.

The deployment as rendered (support/deployment.py) behind nginx as Traefik (the
IngressRoute's two routes, forward-auth's stand-in), with a real JupyterHub as
Nebari's: it logs in a browser that holds a Keycloak session (auto-login) and is
the OAuth provider MLflow signs browsers in with. Requests are a browser's
(support/signin.py follows redirects and keeps cookies per host and path).
"""

from __future__ import annotations

import json
import urllib.parse

import pytest
from support.forward_auth import SESSION_COOKIE as FORWARD_AUTH_COOKIE
from support.signin import Browser, signed_in

from nebari_mlflow_plugin.server import login

pytestmark = pytest.mark.slow

JSON = {"Accept": "application/json", "Content-Type": "application/json"}


def current_user(browser: Browser, prefix: str, headers: dict | None = None):
    """The UI's own call: who is signed in (status, name or None)."""
    hop = browser.request("GET", f"{prefix}/ajax-api/2.0/mlflow/users/current",
                          {**JSON, **(headers or {})})  # fmt: skip
    name = json.loads(hop.body)["user"]["username"] if hop.status == 200 else None
    return hop.status, name


def test_a_browser_signed_in_to_nebari_gets_mlflow_without_a_prompt(deployment):
    prefix = deployment.config.mlflow.route_path
    browser = signed_in(deployment, "bob")
    paths = [urllib.parse.urlsplit(hop.url).path for hop in browser.hops]
    # Only redirects: MLflow -> the hub's authorize (no confirmation page: the hub logs
    # in a Keycloak session and the service needs none) -> MLflow's callback -> the UI.
    assert [hop.status for hop in browser.hops[:-1]] == [302] * (len(browser.hops) - 1)
    assert paths[0] == f"{prefix}/" and paths[-1] == f"{prefix}/"
    assert "/hub/api/oauth2/authorize" in paths
    assert f"{prefix}{login.CALLBACK_PATH}" in paths
    # The session is MLflow's own cookie, and only MLflow's route receives it.
    (callback,) = [h for h in browser.hops if login.CALLBACK_PATH in h.url]
    (set_cookie,) = [c for c in callback.set_cookies() if c.startswith(login.SESSION_COOKIE)]
    attributes = {part.strip().split("=")[0].lower(): part.strip()
                  for part in set_cookie.split(";")[1:]}  # fmt: skip
    assert attributes["path"] == f"Path={prefix}"
    assert {"httponly", "secure", "max-age"} <= set(attributes)
    assert attributes["samesite"].lower() == "samesite=lax"
    assert "domain" not in attributes  # host-only
    assert 0 < int(attributes["max-age"].split("=")[1]) <= 43200
    assert current_user(browser, prefix) == (200, "bob")


def test_the_forward_auth_cookie_alone_no_longer_acts_as_its_user(deployment):
    """Every user's server under /user/... receives `_forward_auth` (Path=/ on the
    domain): replayed to MLflow, it is nobody."""
    prefix = deployment.config.mlflow.route_path
    browser = Browser(deployment.nginx.port, deployment.nginx.route.host)
    domain = deployment.config.domain
    browser.keycloak_session(deployment.forward_auth.cookie("alice", domain), domain)
    status, _ = current_user(browser, prefix)
    assert status == 401
    for path in ("experiments/search?max_results=1", "experiments/create"):
        hop = browser.request("POST" if "create" in path else "GET",
                              f"{prefix}/ajax-api/2.0/mlflow/{path}", JSON,
                              b'{"name": "by-forward-auth"}')  # fmt: skip
        assert hop.status == 401, (path, hop.body[:200])
    # A page navigation is sent to sign in, not served.
    first = browser.request("GET", f"{prefix}/", {"Accept": "text/html"})
    assert first.status == 302
    assert urllib.parse.urlsplit(first.header("Location")).path == "/hub/api/oauth2/authorize"


def test_a_tampered_or_foreign_session_is_nobody(deployment):
    prefix = deployment.config.mlflow.route_path
    browser = signed_in(deployment, "alice")
    jar = browser.cookies[deployment.nginx.route.host]
    value = jar[login.SESSION_COOKIE].value
    jar[login.SESSION_COOKIE].value = value[:-4] + ("AAAA" if value[-4:] != "AAAA" else "BBBB")
    assert current_user(browser, prefix)[0] == 401
    # A session sealed with another key (another deployment's secret) is nobody too.
    other = login.seal(b"k" * 32, login.SESSION_COOKIE, {"t": "x", "e": 9e9})
    jar[login.SESSION_COOKIE].value = other
    assert current_user(browser, prefix)[0] == 401


def test_a_sign_in_answer_without_its_state_is_refused(deployment):
    """The callback belongs to the browser that started the sign-in (state cookie)."""
    prefix = deployment.config.mlflow.route_path
    browser = signed_in(deployment, "alice")
    stranger = Browser(deployment.nginx.port, deployment.nginx.route.host)
    domain = deployment.config.domain
    stranger.keycloak_session(deployment.forward_auth.cookie("dana", domain), domain)
    hop = stranger.request("GET", f"{prefix}{login.CALLBACK_PATH}?code=x&state=y", {})
    assert hop.status == 403 and b"sign-in" in hop.body
    assert login.SESSION_COOKIE not in stranger.cookies.get(deployment.nginx.route.host, {})
    assert current_user(browser, prefix) == (200, "alice")


def test_api_clients_through_traefik_are_not_redirected(deployment):
    """CI outside the cluster: `Authorization` takes the API route (no Keycloak login);
    the server authenticates every such request itself."""
    prefix = deployment.config.mlflow.route_path
    client = Browser(deployment.nginx.port, deployment.nginx.route.host)  # no cookies
    search = f"{prefix}/api/2.0/mlflow/experiments/search?max_results=1"
    for headers in (deployment.auth_header("alice"), deployment.auth_header()):
        hop = client.request("GET", search, {**JSON, **headers})
        assert hop.status == 200, hop.body[:200]
    for bad in ("Bearer not-a-token", "Basic " + "bm9ib2R5Om5vcGU=", "token nope"):
        hop = client.request("GET", search, {**JSON, "Authorization": bad})
        assert hop.status == 401, (bad, hop.status)  # MLflow's answer, not a login page
        assert b"JupyterHub token" in hop.body
    # Without credentials: the login redirect, as before.
    hop = client.request("GET", search, JSON)
    assert hop.status == 302
    assert urllib.parse.urlsplit(hop.header("Location")).path == "/_oauth/login"
    assert FORWARD_AUTH_COOKIE not in client.cookies.get(deployment.nginx.route.host, {})
