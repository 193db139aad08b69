"""A stand-in for Nebari's traefik-forward-auth, for nginx's auth_request.

Like the real one it answers 2xx when the request carries a valid session
cookie and refuses otherwise; nginx then sends the browser to LOGIN_PATH, which
(standing in for Keycloak) sets the session cookie and redirects back.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SESSION_COOKIE = "_forward_auth"
VALID_SESSION = "valid-session-for-tests"
LOGIN_PATH = "/_oauth/login"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith(LOGIN_PATH):
            # Where Keycloak's login would end: set the session, go back.
            target = parse_qs(urlsplit(self.path).query).get("rd", ["/"])[0]
            self.send_response(302)
            self.send_header("Set-Cookie", f"{SESSION_COOKIE}={VALID_SESSION}; Path=/; HttpOnly")
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        cookies = self.headers.get("Cookie", "")
        ok = f"{SESSION_COOKIE}={VALID_SESSION}" in [c.strip() for c in cookies.split(";")]
        self.send_response(200 if ok else 401)
        if ok:
            self.send_header("X-Forwarded-User", "alice")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


class ForwardAuth:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ForwardAuth:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
