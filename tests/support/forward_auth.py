"""A stand-in for Nebari's traefik-forward-auth (thomseddon's, as Nebari's image
`maxisme/traefik-forward-auth` forks it), for nginx's auth_request and for the
MLflow server's own session check.

Like the real one: the session cookie `_forward_auth` is `mac|expires|user`, mac
the URL-safe base64 HMAC-SHA256 (secret) of cookie domain + user + expires; `/`
takes the forwarded request (X-Forwarded-Host, -Uri, -Method), answers 200 with
`X-Forwarded-User` (Nebari's USER_ID_PATH: preferred_username) when the cookie is
valid for the host's cookie domain and not expired, and refuses otherwise. The
real one redirects a request without a cookie to the login (307); nginx's
auth_request only understands 401, so this one answers 401 there too.
LOGIN_PATH stands in for Keycloak's login: `?user=bob` logs in as bob (default
alice), sets the cookie and redirects back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SESSION_COOKIE = "_forward_auth"
LOGIN_PATH = "/_oauth/login"
DEFAULT_USER = "alice"
LIFETIME = 43200


def _signature(secret: bytes, domain: str, user: str, expires: str) -> str:
    mac = hmac.new(secret, f"{domain}{user}{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode()


class ForwardAuth:
    def __init__(self, cookie_domain: str | None = None) -> None:
        self.secret = secrets.token_bytes(32)
        # COOKIE_DOMAIN (Nebari sets the domain); None: the request's host.
        self.cookie_domain = cookie_domain
        self.requests = 0
        self.down = False
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def domain_for(self, host: str) -> str:
        host = host.split(":")[0]
        domain = self.cookie_domain
        if domain and (host == domain or host.endswith(f".{domain}")):
            return domain
        return host

    def cookie(self, user: str, host: str, lifetime: int = LIFETIME) -> str:
        """The session cookie's value for `user`, as the real one makes it at login."""
        expires = str(int(time.time()) + lifetime)
        return f"{_signature(self.secret, self.domain_for(host), user, expires)}|{expires}|{user}"

    def validate(self, value: str, host: str) -> str | None:
        parts = value.split("|")
        if len(parts) != 3:
            return None
        mac, expires, user = parts
        expected = _signature(self.secret, self.domain_for(host), user, expires)
        if not hmac.compare_digest(mac, expected):
            return None
        if not expires.isdigit() or int(expires) < time.time():
            return None
        return user

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        auth = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                auth.requests += 1
                if auth.down:
                    self._answer(503)
                    return
                host = self.headers.get("X-Forwarded-Host") or self.headers.get("Host", "")
                if self.path.startswith(LOGIN_PATH):
                    query = parse_qs(urlsplit(self.path).query)
                    user = query.get("user", [DEFAULT_USER])[0]
                    cookie = f"{SESSION_COOKIE}={auth.cookie(user, host)}; Path=/; HttpOnly"
                    if auth.cookie_domain:  # COOKIE_DOMAIN: the domain and its subdomains
                        cookie += f"; Domain={auth.domain_for(host)}"
                    target = query.get("rd", ["/"])[0]
                    self._answer(302, {"Set-Cookie": cookie, "Location": target})
                    return
                value = self._cookie()
                user = auth.validate(value, host) if value else None
                self._answer(200 if user else 401, {"X-Forwarded-User": user} if user else {})

            def _cookie(self) -> str | None:
                for part in self.headers.get("Cookie", "").split(";"):
                    name, _, value = part.strip().partition("=")
                    if name == SESSION_COOKIE:
                        return value
                return None

            def _answer(self, status: int, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        return Handler

    def __enter__(self) -> ForwardAuth:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
