"""Browser sign-in: MLflow is a JupyterHub OAuth client, its session cookie MLflow's own.

Why: Nebari's forward-auth cookie (`_forward_auth`) has `Path=/` on the whole
domain, so every user's server and app under /user/... receives it: a credential
that names its user to MLflow would let any of them act as their visitors. So the
server no longer accepts it (the forward-auth middleware may still gate the route),
and a browser signs in as JupyterHub's own services do (`HubOAuth`):

1. a browser navigation without a valid session is sent to the hub's
   `/hub/api/oauth2/authorize` (client `service-<name>`, the hub service the plugin
   registers, `oauth_no_confirm`: a user signed in to Nebari sees nothing but
   redirects); a state cookie ties the answer to this browser;
2. `<prefix>/oauth_callback` trades the code for a token at the hub's token
   endpoint (client secret: the service's API token), and verifies it as any
   JupyterHub token (owner, scopes: the hub grants it
   `access:services!service=<name>`, MLflow's own);
3. the token goes, encrypted (AES-GCM, key derived from the Flask secret every
   worker and replica shares), into the session cookie: Path=<prefix>, HttpOnly,
   Secure, SameSite=Lax, expiring. Each request verifies the token like a bearer
   token (cached `cache_seconds`), so a hub logout (which deletes the session's
   OAuth tokens) ends the MLflow session too.

API clients (any `Authorization` header, or not asking for HTML) are never
redirected: they get 401 with what is accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # flask is the server's; the cookie format is usable without it
    from flask import Request, Response

SESSION_COOKIE = "nebari-mlflow-session"
STATE_COOKIE = "nebari-mlflow-oauth-state"
CALLBACK_PATH = "/oauth_callback"
# A sign-in must come back within this long.
STATE_SECONDS = 600

# Names of the variables, shared with the chart (helm/mlflow/templates/_auth.tpl).
CLIENT_ID = "NEBARI_MLFLOW_OAUTH_CLIENT_ID"
REDIRECT_URI = "NEBARI_MLFLOW_OAUTH_REDIRECT_URI"
AUTHORIZE_URL = "NEBARI_MLFLOW_OAUTH_AUTHORIZE_URL"
SESSION_SECONDS = "NEBARI_MLFLOW_SESSION_SECONDS"
FLASK_SECRET = "MLFLOW_FLASK_SERVER_SECRET_KEY"


class LoginFailed(Exception):
    """The sign-in cannot complete (shown to the user, with what to do)."""


@dataclass(frozen=True)
class LoginSettings:
    client_id: str
    redirect_uri: str
    authorize_url: str
    prefix: str
    session_seconds: int
    key: bytes

    @property
    def enabled(self) -> bool:
        return bool(self.client_id and self.redirect_uri and self.authorize_url and self.key)

    @classmethod
    def from_env(cls) -> LoginSettings:
        env = os.environ
        secret = env.get(FLASK_SECRET, "")
        # Its own key, not the Flask secret itself (which signs MLflow's CSRF tokens).
        key = hmac.new(secret.encode(), b"nebari-mlflow-session", hashlib.sha256).digest()
        return cls(
            client_id=env.get(CLIENT_ID, ""),
            redirect_uri=env.get(REDIRECT_URI, ""),
            authorize_url=env.get(AUTHORIZE_URL, ""),
            prefix=env.get("_MLFLOW_STATIC_PREFIX", "").rstrip("/"),  # set by `mlflow server`
            session_seconds=int(env.get(SESSION_SECONDS, "43200")),
            key=key if secret else b"",
        )


def seal(key: bytes, name: str, payload: dict) -> str:
    """`payload` encrypted and authenticated for the cookie `name` (AES-256-GCM)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # mlflow's dependency

    nonce = secrets.token_bytes(12)
    sealed = AESGCM(key).encrypt(nonce, json.dumps(payload).encode(), name.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def unseal(key: bytes, name: str, value: str) -> dict | None:
    """The payload of a cookie `seal` made and that has not expired (`e`), else None."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        payload = json.loads(AESGCM(key).decrypt(raw[:12], raw[12:], name.encode()))
    except (InvalidTag, ValueError, TypeError):
        return None
    if not isinstance(payload, dict) or not payload.get("e", 0) > time.time():
        return None
    return payload


def session_token(settings: LoginSettings, request: Request) -> str | None:
    """The JupyterHub token of the request's MLflow session, if it has a valid one."""
    value = request.cookies.get(SESSION_COOKIE)
    if not value or not settings.enabled:
        return None
    payload = unseal(settings.key, SESSION_COOKIE, value)
    token = payload.get("t") if payload else None
    return token if isinstance(token, str) and token else None


def is_callback(settings: LoginSettings, request: Request) -> bool:
    return settings.enabled and request.path == f"{settings.prefix}{CALLBACK_PATH}"


def wants_login(settings: LoginSettings, request: Request) -> bool:
    """A browser navigating to a page: API clients and the UI's own calls get 401."""
    return (
        settings.enabled
        and request.method in ("GET", "HEAD")
        and "Authorization" not in request.headers
        and "text/html" in request.headers.get("Accept", "")
    )


def _cookie(response: Response, settings: LoginSettings, name: str, value: str, age: int) -> None:
    response.set_cookie(
        name, value, max_age=age, path=settings.prefix or "/", secure=True, httponly=True,
        samesite="Lax",
    )  # fmt: skip


def _local_target(settings: LoginSettings, target: str) -> str:
    """Where to return after sign-in: a path under the route, nothing else."""
    parts = urllib.parse.urlsplit(target)
    home = f"{settings.prefix}/"
    if parts.scheme or parts.netloc or not (parts.path + "/").startswith(home):
        return home
    return target


def login_redirect(settings: LoginSettings, request: Request) -> Response:
    """Send the browser to the hub's authorize endpoint, remembering where it was."""
    from flask import redirect

    state = secrets.token_urlsafe(24)
    query = urllib.parse.urlencode({
        "client_id": settings.client_id, "redirect_uri": settings.redirect_uri,
        "response_type": "code", "state": state,
    })  # fmt: skip
    response = redirect(f"{settings.authorize_url}?{query}", code=302)
    target = _local_target(settings, request.full_path.rstrip("?"))
    sealed = seal(settings.key, STATE_COOKIE,
                  {"s": state, "n": target, "e": time.time() + STATE_SECONDS})  # fmt: skip
    _cookie(response, settings, STATE_COOKIE, sealed, STATE_SECONDS)
    response.headers["Cache-Control"] = "no-store"
    return response


def exchange_code(token_url: str, settings: LoginSettings, client_secret: str, code: str,
                  timeout: float) -> tuple[str, float]:  # fmt: skip
    """(access token, seconds it lives) for an authorization code, from the hub."""
    body = urllib.parse.urlencode({
        "client_id": settings.client_id, "client_secret": client_secret,
        "grant_type": "authorization_code", "code": code, "redirect_uri": settings.redirect_uri,
    }).encode()  # fmt: skip
    request = urllib.request.Request(
        token_url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            model = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise ConnectionError(f"JupyterHub answered {exc.code}") from exc
        raise LoginFailed(f"JupyterHub refused the sign-in code ({exc.code})") from exc
    token = model.get("access_token") if isinstance(model, dict) else None
    if not token:
        raise LoginFailed("JupyterHub answered without a token")
    return token, float(model.get("expires_in") or settings.session_seconds)


def callback(
    settings: LoginSettings, request: Request, exchange: Callable[[str], tuple[str, float]],
    verify: Callable[[str], object],
) -> Response:  # fmt: skip
    """Finish the sign-in: check the state, trade the code, verify the token (who, and
    that it is meant for MLflow), set the session, go back where the browser was."""
    from flask import redirect

    state = unseal(settings.key, STATE_COOKIE, request.cookies.get(STATE_COOKIE, ""))
    given = request.args.get("state", "")
    if request.args.get("error"):
        raise LoginFailed(f"JupyterHub did not sign you in: {request.args.get('error')}")
    if not state or not given or not hmac.compare_digest(str(state.get("s")), given):
        raise LoginFailed("the sign-in expired or was started elsewhere: open MLflow again")
    token, lifetime = exchange(request.args.get("code", ""))
    verify(token)
    response = redirect(_local_target(settings, str(state.get("n", ""))), code=302)
    age = int(min(settings.session_seconds, lifetime))
    session = seal(settings.key, SESSION_COOKIE, {"t": token, "e": time.time() + age})
    _cookie(response, settings, SESSION_COOKIE, session, age)
    # One Set-Cookie a response: MLflow 3.17's SecurityHeadersMiddleware keeps only the
    # last of repeated headers. The state cookie expires by itself (STATE_SECONDS), and
    # is worth nothing without the browser and an unused code for it.
    response.headers["Cache-Control"] = "no-store"
    return response


def failure_page(status: int, message: str) -> Response:
    from flask import make_response

    response = make_response(f"MLflow sign-in failed: {message}.\n", status)
    response.mimetype = "text/plain"
    return response
