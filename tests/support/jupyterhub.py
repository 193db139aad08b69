"""A real JupyterHub (5.3, what Nebari 2025.10's z2jh 4.2.0 runs) on loopback, with its
configurable-http-proxy, configured as z2jh configures it from the plugin's
`jupyterhub.overrides`: `hub.services` (named by their `name`, api_token from
z2jh's Secret `hub`, key `hub.services.<key>.apiToken`) and `hub.loadRoles`;
`manage_roles = True` as Nebari's KeyCloakOAuthenticator sets it, and `hub.config`
(traitlets, e.g. `Spawner.server_token_scopes`). A dummy authenticator stands in for
Keycloak, with Nebari's role mechanism: Keycloak's client roles on `jupyterhub`
(`managed_roles`, as the plugin's Terraform declares them) become JupyterHub roles of
their groups at hub start, by the rule of Nebari's `_get_scope_from_role` (only with
`component: jupyterhub`; `scopes` comma-separated; groups by path). Users, groups
(Keycloak paths, as Nebari's manage_groups makes them) and tokens are created through
the hub's own API. Users' servers are real processes the hub spawns
(`SimpleLocalProcessSpawner`): `support/hub_server_app.py`, an OAuth client of the hub
as every JupyterLab server is.

With `sso_url` (the forward-auth stand-in: who holds a Keycloak session), the hub
logs browsers in as Nebari's does, without a prompt: auto-login from the Keycloak
session, and the user's roles assigned at login (`login_roles`, defined at start
as Nebari's authenticator loads its Keycloak client roles), so browsers can sign in
to hub services through the hub's real OAuth.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.mlflow_server import free_port

REPO = Path(__file__).resolve().parents[2]
HUB_VENV = Path(os.environ.get("HUB_VENV", REPO / ".venv-hub"))
CHP = REPO / ".tools" / "node_modules" / ".bin" / "configurable-http-proxy"
SERVER_APP = Path(__file__).resolve().parent / "hub_server_app.py"
# The test's own service: creates users and groups, mints and revokes tokens.
ADMIN_SERVICE = "test-admin"

# Nebari's KeyCloakOAuthenticator as a browser meets it: auto-login (a user signed in to
# Keycloak sees no hub login page), roles assigned at each login (manage_roles: `user`,
# `admin` for admins, and the user's Keycloak client roles), definitions loaded at start.
# "Signed in to Keycloak" is the forward-auth stand-in's session cookie.
SSO_AUTHENTICATOR = """
import urllib.error, urllib.request

class KeycloakSessionAuthenticator(NebariRolesAuthenticator):
    auto_login = True
    manage_roles = True

    async def authenticate(self, handler, data=None):
        cookie = handler.get_cookie("_forward_auth")
        if not cookie:
            return None
        request = urllib.request.Request(SSO_URL, headers={
            "Cookie": f"_forward_auth={cookie}", "X-Forwarded-Host": handler.request.host,
            "X-Forwarded-Uri": handler.request.uri, "X-Forwarded-Method": "GET"})
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                name = answer.headers.get("X-Forwarded-User")
        except urllib.error.HTTPError:
            return None
        if not name:
            return None
        admin = name in self.admin_users
        roles = [{"name": "user"}, *({"name": r["name"]} for r in LOGIN_ROLES)]
        roles += [{"name": "admin"}] if admin else []
        return {"name": name, "admin": admin, "roles": roles}

    async def load_managed_roles(self):
        return [*(await super().load_managed_roles()), *LOGIN_ROLES]

c.JupyterHub.authenticator_class = KeycloakSessionAuthenticator
"""


def missing_hub() -> str | None:
    if not (HUB_VENV / "bin" / "jupyterhub").exists():
        return f"JupyterHub virtualenv missing at {HUB_VENV} (run `make install`)"
    if not CHP.exists():
        return f"configurable-http-proxy missing at {CHP} (run `make install`)"
    return None


def traitlets_config(overrides: dict[str, Any]) -> dict[str, dict]:
    """`hub.config`, which z2jh applies as `c.<Class>.<trait> = value`."""
    return json.loads(json.dumps(overrides.get("hub", {}).get("config", {})))


# Nebari's KeyCloakOAuthenticator, where it decides users' roles, with the Keycloak
# lookups replaced by the roles in KEYCLOAK_CLIENT_ROLES (a JSON file).
AUTHENTICATOR = """
import json, os
from jupyterhub.auth import DummyAuthenticator

class NebariRolesAuthenticator(DummyAuthenticator):
    reset_managed_roles_on_startup = True

    @staticmethod
    def _get_scope_from_role(role):
        attributes = role.get("attributes") or {}
        component = attributes.get("component")
        scopes = attributes.get("scopes")
        if component in ("jupyterhub", ["jupyterhub"]) and scopes:
            return (scopes[0] if isinstance(scopes, list) else scopes).split(",")
        return []

    async def load_managed_roles(self):
        with open(os.environ["KEYCLOAK_CLIENT_ROLES"]) as f:
            client_roles = json.load(f)
        return [
            {"name": role["name"], "description": role.get("description", ""),
             "scopes": self._get_scope_from_role(role),
             "groups": ["/" + group for group in role.get("groups", [])], "users": []}
            for role in client_roles
        ]
"""


def hub_config(overrides: dict[str, Any], secret: dict[str, str]) -> tuple[list, list]:
    """(services, load_roles) as z2jh's jupyterhub_config.py builds them."""
    hub = overrides.get("hub", {})
    services = []
    for key, service in json.loads(json.dumps(hub.get("services", {}))).items():
        service.setdefault("name", key)
        service.pop("apiToken", None)
        service["api_token"] = secret[f"hub.services.{key}.apiToken"]
        services.append(service)
    roles = []
    for key, role in json.loads(json.dumps(hub.get("loadRoles", {}))).items():
        role.setdefault("name", key)
        roles.append(role)
    return services, roles


@dataclass
class JupyterHub:
    workdir: Path
    services: list[dict]
    roles: list[dict]
    admins: set[str]
    groups: dict[str, list[str]] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proxy_port: int = field(default_factory=free_port)
    proxy_api_port: int = field(default_factory=free_port)
    admin_token: str = field(default_factory=lambda: secrets.token_hex(32))
    # Keycloak client roles on `jupyterhub` (name, description, attributes, groups).
    managed_roles: list[dict] = field(default_factory=list)
    # z2jh's hub.config: {Class: {trait: value}}.
    traitlets: dict[str, dict] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    # Keycloak-session login (see SSO_AUTHENTICATOR): the stand-in's URL, and the
    # roles every user gets at login (as from Keycloak client roles of their groups).
    sso_url: str | None = None
    login_roles: list[dict] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hub/api"

    def config(self) -> str:
        # The harness's own client, a hub admin (only an admin may change the admin flag).
        services = [
            *self.services,
            {"name": ADMIN_SERVICE, "api_token": self.admin_token, "admin": True},
        ]
        roles = [*self.roles, {
            "name": ADMIN_SERVICE, "services": [ADMIN_SERVICE],
            "scopes": ["admin:users", "tokens", "admin:groups", "list:users", "admin:servers",
                       "shares"],
        }]  # fmt: skip
        traitlets = [
            f"c.{cls}.{trait} = {value!r}"
            for cls, traits in self.traitlets.items()
            for trait, value in traits.items()
        ]
        if self.sso_url:
            authenticator = [
                f"SSO_URL = {self.sso_url!r}",
                f"LOGIN_ROLES = {self.login_roles!r}",
                SSO_AUTHENTICATOR,
            ]
        else:
            authenticator = ["c.JupyterHub.authenticator_class = NebariRolesAuthenticator"]
        return "\n".join(
            [
                AUTHENTICATOR,
                f"c.JupyterHub.bind_url = 'http://127.0.0.1:{self.proxy_port}'",
                "c.JupyterHub.hub_ip = '127.0.0.1'",
                f"c.JupyterHub.hub_port = {self.port}",
                f"c.ConfigurableHTTPProxy.command = [{str(CHP)!r}]",
                f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{self.proxy_api_port}'",
                f"c.ConfigurableHTTPProxy.auth_token = {secrets.token_hex(16)!r}",
                f"c.JupyterHub.db_url = 'sqlite:///{self.workdir}/jupyterhub.sqlite'",
                f"c.JupyterHub.cookie_secret = bytes.fromhex({secrets.token_hex(32)!r})",
                f"c.JupyterHub.pid_file = '{self.workdir}/jupyterhub.pid'",
                *authenticator,
                "c.Authenticator.allow_all = True",
                # Users' servers: the app below, spawned as the hub spawns JupyterLab.
                "c.JupyterHub.spawner_class = 'simple'",
                "c.SimpleLocalProcessSpawner.home_dir_template = "
                f"'{self.workdir}/home/{{username}}'",
                # A copy outside tests/support, whose jupyterhub.py would shadow the package.
                f"c.Spawner.cmd = [{str(HUB_VENV / 'bin' / 'python')!r}, "
                f"{str(self.workdir / SERVER_APP.name)!r}]",
                "c.Spawner.start_timeout = 60",
                "c.Spawner.http_timeout = 60",
                "c.Authenticator.manage_roles = True",  # as Nebari's KeyCloakOAuthenticator
                f"c.Authenticator.admin_users = {sorted(self.admins)!r}",
                f"c.JupyterHub.services = {services!r}",
                f"c.JupyterHub.load_roles = {roles!r}",
                *traitlets,
            ]
        )

    def start(self) -> JupyterHub:
        return self.launch().wait()

    def launch(self) -> JupyterHub:
        """Start the process; `wait` for it to answer (and seed it) later."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "jupyterhub_config.py").write_text(self.config())
        (self.workdir / SERVER_APP.name).write_text(SERVER_APP.read_text())
        roles_file = self.workdir / "keycloak-client-roles.json"
        roles_file.write_text(json.dumps(self.managed_roles))
        log = (self.workdir / "jupyterhub.log").open("ab")
        env = {"PATH": f"{HUB_VENV / 'bin'}:{os.environ['PATH']}", "HOME": str(self.workdir),
               "KEYCLOAK_CLIENT_ROLES": str(roles_file)}  # fmt: skip
        self.proc = subprocess.Popen(
            [str(HUB_VENV / "bin" / "jupyterhub"), "-f", "jupyterhub_config.py"],
            cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        return self

    def wait(self) -> JupyterHub:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.workdir / "jupyterhub.log").read_text()[-4000:])
            with contextlib.suppress(OSError):
                self.api("GET", "/")
                break
            time.sleep(0.3)
        else:
            raise TimeoutError("JupyterHub did not start")
        for group, users in self.groups.items():
            self.add_users(*users)
            path = f"/groups/{urllib.request.quote(group, safe='')}"
            with contextlib.suppress(urllib.error.HTTPError):  # exists: a restarted hub
                self.api("POST", path)
            self.api("POST", f"{path}/users", {"users": users})
        self.add_users(*self.admins)
        return self

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.api_url}{path}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"token {token or self.admin_token}"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            data = response.read()
        return json.loads(data) if data else None

    def add_users(self, *names: str) -> None:
        existing = {u["name"] for u in self.api("GET", "/users")}
        new = [n for n in names if n not in existing]
        if new:
            self.api("POST", "/users", {"usernames": new})

    def token(self, user: str, note: str = "server", scopes: list[str] | None = None,
              expires_in: int | None = None) -> tuple[str, str]:  # fmt: skip
        """(token, id) of a new API token of `user`: with all the user's permissions (as
        one made on /hub/token), or only `scopes`."""
        self.add_users(user)
        body: dict[str, Any] = {"note": note}
        if scopes is not None:
            body["scopes"] = scopes
        if expires_in is not None:
            body["expires_in"] = expires_in
        made = self.api("POST", f"/users/{user}/tokens", body)
        return made["token"], made["id"]

    @property
    def public_url(self) -> str:
        """The proxy, as browsers reach the hub and users' servers."""
        return f"http://127.0.0.1:{self.proxy_port}"

    def start_server(self, user: str) -> str:
        """Spawn `user`'s server as the hub spawns JupyterLab; its JUPYTERHUB_API_TOKEN."""
        self.add_users(user)
        token_file = self.workdir / "home" / user / "server-token"
        token_file.unlink(missing_ok=True)
        with contextlib.suppress(urllib.error.HTTPError):  # 202: still starting
            self.api("POST", f"/users/{user}/server")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            model = self.api("GET", f"/users/{user}")
            server = (model.get("servers") or {}).get("", {})
            if server.get("ready") and token_file.exists():
                return token_file.read_text()
            time.sleep(0.3)
        raise TimeoutError(f"{user}'s server did not start")

    def stop_server(self, user: str) -> None:
        with contextlib.suppress(urllib.error.HTTPError):
            self.api("DELETE", f"/users/{user}/server")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not (self.api("GET", f"/users/{user}").get("servers") or {}):
                return
            time.sleep(0.3)
        raise TimeoutError(f"{user}'s server did not stop")

    def visitor_token(self, owner: str, visitor: str, sso_cookie: str | None = None) -> dict:
        """What `owner`'s server holds after `visitor` opened it in a browser: JupyterHub's
        real OAuth flow (log in, the owner shares the server, authorize, callback). With
        a Keycloak-session hub (`sso_url`), `sso_cookie` is the visitor's `_forward_auth`."""
        self.api("POST", f"/shares/{owner}/", {"user": visitor})
        browser = _Browser(self.public_url)
        browser.login(visitor, sso_cookie)
        return json.loads(browser.open(f"/user/{owner}/visitor"))

    def revoke(self, user: str, token_id: str) -> None:
        self.api("DELETE", f"/users/{user}/tokens/{token_id}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGCONT)
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


class _Browser:
    """Cookies, redirects and HTML forms, as a browser follows JupyterHub's pages."""

    def __init__(self, base: str) -> None:
        import http.cookiejar

        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def _fetch(self, path: str, form: dict | None = None) -> tuple[str, str]:
        url = path if path.startswith("http") else f"{self.base}{path}"
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        with self.opener.open(urllib.request.Request(url, data=data), timeout=30) as response:
            return response.geturl(), response.read().decode()

    @staticmethod
    def _form(page: str) -> tuple[str, dict[str, str]] | None:
        import html
        import re

        match = re.search(r"<form[^>]*action=\"([^\"]*)\"[^>]*>(.*?)</form>", page, re.S)
        if not match:
            return None
        fields = {}
        for tag in re.findall(r"<input[^>]*>", match.group(2)):
            name = re.search(r'name="([^"]*)"', tag)
            value = re.search(r'value="([^"]*)"', tag)
            if name:
                fields[name.group(1)] = html.unescape(value.group(1)) if value else ""
        return html.unescape(match.group(1)), fields

    def login(self, user: str, sso_cookie: str | None = None) -> None:
        if sso_cookie is not None:  # the hub logs the Keycloak session in, no form
            import http.cookiejar

            host = urllib.parse.urlsplit(self.base).hostname or ""
            self.jar.set_cookie(http.cookiejar.Cookie(
                0, "_forward_auth", sso_cookie, None, False, host, False, False, "/", True,
                False, None, False, None, None, {}))  # fmt: skip
            self._fetch("/hub/login")
            return
        _, page = self._fetch("/hub/login")
        action, fields = self._form(page)
        fields.update(username=user, password="any")
        self._fetch(urllib.parse.urljoin(f"{self.base}/hub/login", action), fields)

    def open(self, path: str) -> str:
        """GET `path`, confirming JupyterHub's authorization page if it shows one."""
        url, page = self._fetch(path)
        if "/hub/api/oauth2/authorize" in url:
            action, fields = self._form(page)
            url, page = self._fetch(urllib.parse.urljoin(url, action), fields)
        return page
