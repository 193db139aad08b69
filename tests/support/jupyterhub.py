"""A real JupyterHub (5.3, what Nebari 2025.10's z2jh 4.2.0 runs) on loopback, with its
configurable-http-proxy, configured as z2jh configures it from the plugin's
`jupyterhub.overrides`: `hub.services` (named by their `name`, api_token from
z2jh's Secret `hub`, key `hub.services.<key>.apiToken`) and `hub.loadRoles`;
`manage_roles = True` as Nebari's KeyCloakOAuthenticator sets it. A dummy
authenticator stands in for Keycloak; users, groups (Keycloak paths, as Nebari's
manage_groups makes them) and tokens are created through the hub's own API.

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
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.mlflow_server import free_port

REPO = Path(__file__).resolve().parents[2]
HUB_VENV = Path(os.environ.get("HUB_VENV", REPO / ".venv-hub"))
CHP = REPO / ".tools" / "node_modules" / ".bin" / "configurable-http-proxy"
# The test's own service: creates users and groups, mints and revokes tokens.
ADMIN_SERVICE = "test-admin"

# Nebari's KeyCloakOAuthenticator as a browser meets it: auto-login (a user signed in to
# Keycloak sees no hub login page), roles assigned at each login (manage_roles: `user`,
# `admin` for admins, and the user's Keycloak client roles), definitions loaded at start.
# "Signed in to Keycloak" is the forward-auth stand-in's session cookie.
SSO_AUTHENTICATOR = """
import urllib.error, urllib.request
from jupyterhub.auth import Authenticator

class KeycloakSessionAuthenticator(Authenticator):
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
        return LOGIN_ROLES

c.JupyterHub.authenticator_class = KeycloakSessionAuthenticator
"""


def missing_hub() -> str | None:
    if not (HUB_VENV / "bin" / "jupyterhub").exists():
        return f"JupyterHub virtualenv missing at {HUB_VENV} (run `make install`)"
    if not CHP.exists():
        return f"configurable-http-proxy missing at {CHP} (run `make install`)"
    return None


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
            "scopes": ["admin:users", "tokens", "admin:groups", "list:users"],
        }]  # fmt: skip
        if self.sso_url:
            authenticator = [
                f"SSO_URL = {self.sso_url!r}",
                f"LOGIN_ROLES = {self.login_roles!r}",
                SSO_AUTHENTICATOR,
            ]
        else:
            authenticator = [
                "c.JupyterHub.authenticator_class = 'dummy'",
                "c.Authenticator.manage_roles = True",  # as Nebari's KeyCloakOAuthenticator
            ]
        return "\n".join(
            [
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
                f"c.Authenticator.admin_users = {sorted(self.admins)!r}",
                f"c.JupyterHub.services = {services!r}",
                f"c.JupyterHub.load_roles = {roles!r}",
            ]
        )

    def start(self) -> JupyterHub:
        return self.launch().wait()

    def launch(self) -> JupyterHub:
        """Start the process; `wait` for it to answer (and seed it) later."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "jupyterhub_config.py").write_text(self.config())
        log = (self.workdir / "jupyterhub.log").open("ab")
        env = {"PATH": f"{HUB_VENV / 'bin'}:{os.environ['PATH']}", "HOME": str(self.workdir)}
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

    def token(self, user: str, note: str = "server") -> tuple[str, str]:
        """(token, id) of a new API token of `user`, as the hub gives one to their server."""
        self.add_users(user)
        made = self.api("POST", f"/users/{user}/tokens", {"note": note})
        return made["token"], made["id"]

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
