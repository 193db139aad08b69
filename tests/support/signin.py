"""A browser's requests through the proxy (nginx as Traefik), without a browser:
redirects followed hop by hop, cookies kept per host and sent by path, as a
browser does. Used to sign in to MLflow through the hub's real OAuth where the
journey needs no rendering (support/browser.py drives Chromium for that).

Every host (the Nebari domain, MLflow's own host) is reached at nginx's plain
port with its Host header; the proxy tells upstreams the scheme is https.
"""

from __future__ import annotations

import http.client
import urllib.parse
from dataclasses import dataclass, field
from http.cookies import SimpleCookie

from support.forward_auth import SESSION_COOKIE as FORWARD_AUTH_COOKIE

# What a browser sends when it navigates to a page.
NAVIGATE = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Sec-Fetch-Mode": "navigate"}


@dataclass
class Cookie:
    value: str
    path: str = "/"
    attributes: dict[str, str] = field(default_factory=dict)

    def sent_to(self, path: str) -> bool:
        prefix = self.path.rstrip("/")
        return path == self.path or path.startswith(prefix + "/") or not prefix


@dataclass
class Hop:
    method: str
    url: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def set_cookies(self) -> list[str]:
        return [v for k, v in self.headers if k.lower() == "set-cookie"]


@dataclass
class Browser:
    """Cookies by host; `get` follows redirects and records every hop."""

    port: int
    default_host: str
    cookies: dict[str, dict[str, Cookie]] = field(default_factory=dict)
    hops: list[Hop] = field(default_factory=list)

    def keycloak_session(self, value: str, *hosts: str) -> None:
        """Nebari's forward-auth cookie (COOKIE_DOMAIN: the domain and its subdomains)."""
        for host in hosts:
            self.cookies.setdefault(host, {})[FORWARD_AUTH_COOKIE] = Cookie(value)

    def _store(self, host: str, header: str) -> None:
        parsed = SimpleCookie()
        parsed.load(header)
        for name, morsel in parsed.items():
            attributes = {k: v for k, v in morsel.items() if v}
            jar = self.cookies.setdefault(host, {})
            if morsel["max-age"] == "0" or not morsel.value:
                jar.pop(name, None)
            else:
                jar[name] = Cookie(morsel.value, morsel["path"] or "/", attributes)

    def request(self, method: str, url: str, headers: dict | None = None,
                body: bytes | None = None) -> Hop:  # fmt: skip
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or self.default_host
        path = parts.path or "/"
        cookies = "; ".join(f"{n}={c.value}" for n, c in self.cookies.get(host, {}).items()
                            if c.sent_to(path))  # fmt: skip
        sent = {"Host": host, **(headers or {})}
        if cookies:
            sent["Cookie"] = cookies
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        target = path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, target, body=body, headers=sent)
        response = connection.getresponse()
        hop = Hop(method, f"https://{host}{target}", response.status, response.getheaders(),
                  response.read())  # fmt: skip
        connection.close()
        for header in hop.set_cookies():
            self._store(host, header)
        self.hops.append(hop)
        return hop

    def get(self, url: str, headers: dict | None = None, max_hops: int = 12) -> Hop:
        """GET `url` as a navigation, following redirects like a browser."""
        current = url if "://" in url else f"https://{self.default_host}{url}"
        for _ in range(max_hops):
            hop = self.request("GET", current, {**NAVIGATE, **(headers or {})})
            location = hop.header("Location")
            if hop.status not in (301, 302, 303, 307, 308) or not location:
                return hop
            current = urllib.parse.urljoin(current, location)
        raise AssertionError(f"more than {max_hops} redirects: {[h.url for h in self.hops]}")


def signed_in(dep, user: str = "alice", host: str | None = None) -> Browser:
    """A browser signed in to Nebari as `user` (Keycloak session) that opened MLflow's
    page: MLflow sent it through the hub's OAuth and set its session."""
    route_host = host or dep.nginx.route.host
    browser = Browser(dep.nginx.port, route_host)
    domain = dep.config.domain
    browser.keycloak_session(dep.forward_auth.cookie(user, domain), domain, route_host)
    page = browser.get(f"https://{route_host}{dep.config.mlflow.route_path}/")
    assert page.status == 200, [(h.status, h.url, h.body[:200]) for h in browser.hops]
    return browser


def session_cookies(dep, user: str = "alice", host: str | None = None) -> dict[str, str]:
    """The cookies `user`'s signed-in browser sends to MLflow's route (name -> value):
    Nebari's forward-auth session, which Traefik's login asks for, and MLflow's own
    session, set after the hub's OAuth (the one the server accepts)."""
    route_host = host or dep.nginx.route.host
    jar = signed_in(dep, user, route_host).cookies[route_host]
    return {name: cookie.value for name, cookie in jar.items()}


def session_header(dep, user: str = "alice", host: str | None = None) -> dict[str, str]:
    """A `Cookie` header with `session_cookies`."""
    cookies = session_cookies(dep, user, host)
    return {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}
