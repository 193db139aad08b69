"""The MLflow server's authorization function (`authorization_function` in the auth
ini): every request is a known Nebari user, or it is refused.

Who is calling, in order:
1. `Authorization: Bearer|token <JupyterHub token>`: a user pod, terminal, Argo step
   or scheduled job (`JUPYTERHUB_API_TOKEN`), verified with JupyterHub.
2. `Authorization: Basic`: an MLflow user with a password (machines: CI, services),
   verified against MLflow's own user store.
3. Nebari's session cookie: a browser through Traefik, verified by asking Nebari's
   forward-auth about that cookie. A client's `X-Forwarded-User` is never trusted.
Anything else: 401. A verifier that cannot answer: 503, never "allow".

Then MLflow's basic-auth app authorizes the request against its permission store
(admins, creators' MANAGE, `default_permission`), which `grants.sync` keeps in step
with Nebari, and `attribution.stamp` makes the run writes carry the caller's name.
`lookups` lets that check remember its store lookups for `cache_seconds` (a refusal
is always decided on fresh data).
"""

from __future__ import annotations

import logging
import os
import threading

from flask import Response, current_app, g, has_request_context, make_response, request
from werkzeug.datastructures import Authorization

from . import attribution, grants, lookups, request_metrics, upstream
from .identity import Identity, IdentityCache
from .settings import Settings

_logger = logging.getLogger(__name__)
request_metrics.install()  # latency by kind of route, for the alerts (request_metrics.py)

UNAUTHENTICATED = (
    "Not authenticated. MLflow on Nebari accepts: a JupyterHub token "
    "(Authorization: Bearer $JUPYTERHUB_API_TOKEN; user pods send it automatically), "
    "an MLflow user's password (HTTP Basic: MLFLOW_TRACKING_USERNAME / "
    "MLFLOW_TRACKING_PASSWORD, created by an MLflow admin), or a browser session "
    "through https://<nebari-domain>/<route>."
)
# Read without a credential, as before auth: Prometheus scrapes the server's root
# /metrics (request counts and latencies by method and status, the MLflow version) and
# `nebari mlflow status` reads <prefix>/version; nothing about users' data. A GET of
# exactly these paths passes as the built-in admin, which skips MLflow's validators
# (there is none for them) and nothing else. (<prefix>/health and the UI's static
# files are already open in MLflow's basic-auth app.)
METRICS_PATH = "/metrics"


def _open_paths() -> set[str]:
    prefix = os.environ.get("_MLFLOW_STATIC_PREFIX", "").rstrip("/")  # set by `mlflow server`
    return {METRICS_PATH, f"{prefix}/version"}


_settings: Settings | None = None
_cache: IdentityCache | None = None
_init_lock = threading.Lock()


def _state() -> tuple[Settings, IdentityCache]:
    global _settings, _cache
    if _cache is None:
        with _init_lock:
            if _cache is None:
                settings = Settings.from_env()
                if has_request_context():  # the server's first request: its app is set up
                    app = current_app._get_current_object()
                    lookups.install(app, settings.cache_seconds, settings.cache_size)
                _settings = settings
                _cache = IdentityCache(settings.cache_seconds, settings.cache_size)
    return _settings, _cache


def _response(status: int, message: str) -> Response:
    response = make_response(message, status)
    response.mimetype = "text/plain"
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="mlflow"'
    return response


def _credential() -> tuple[str, str] | None:
    """(kind, credential) the request carries, in the order of precedence."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return "hub", value.strip()
    if scheme.lower() == "basic" and request.authorization is not None:
        auth = request.authorization
        return "mlflow", f"{auth.username}:{auth.password}"
    cookie = request.cookies.get(upstream.SESSION_COOKIE)
    if cookie:
        return "session", cookie
    return None


def _verify(settings: Settings, kind: str, credential: str) -> Identity:
    if kind == "hub":
        identity = upstream.verify_hub_token(settings, credential)
    elif kind == "session":
        identity = upstream.verify_session(
            settings, credential, request.host, request.full_path.rstrip("?"), request.method
        )
    else:
        from mlflow.server.auth import store

        username, password = credential.split(":", 1)
        if not store.authenticate_user(username, password):
            raise upstream.Refused("wrong MLflow username or password")
        return Identity(name=username, admin=store.get_user(username).is_admin, source="mlflow")
    if identity.name == settings.admin_username:
        # The built-in admin is a break-glass password, never a person's account.
        raise upstream.Refused(f"{identity.name!r} is reserved for MLflow's built-in admin")
    grants.sync(identity)
    return identity


def identify() -> Identity | Response:
    """The caller of the current request (memoised on the request: MLflow asks
    again in its after-request handlers)."""
    known = g.get("nebari_identity")
    if known is not None:
        return known
    settings, cache = _state()
    credential = _credential()
    if credential is None:
        return _response(401, UNAUTHENTICATED)
    # A session is vouched for per host (its cookie domain): the host is part of the key.
    key = cache.key(*credential, request.host if credential[0] == "session" else "")
    identity = cache.get(key)
    if identity is None:
        try:
            with lookups.fresh():
                identity = _verify(settings, *credential)
        except upstream.Refused as exc:
            return _response(401, f"Not authenticated: {exc}.\n\n{UNAUTHENTICATED}")
        except upstream.Unavailable as exc:
            _logger.warning("nebari-mlflow: cannot verify a %s credential: %s", credential[0], exc)
            return _response(
                503,
                f"MLflow cannot verify who you are right now ({exc}); try again shortly.",
            )
        cache.put(key, identity)
    g.nebari_identity = identity
    return identity


def _reserved_experiment_refusal(identity: Identity) -> Response | None:
    """`users/<name>` is <name>'s alone: nobody else creates or renames to it."""
    if request.method != "POST" or identity.admin:
        return None
    path = request.path
    if path.endswith("/mlflow/experiments/create"):
        field = "name"
    elif path.endswith("/mlflow/experiments/update"):
        field = "new_name"
    else:
        return None
    body = request.get_json(force=True, silent=True)
    name = body.get(field) if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.startswith(grants.USER_EXPERIMENT_PREFIX):
        return None
    owner = name[len(grants.USER_EXPERIMENT_PREFIX) :].split("/", 1)[0]
    if owner == identity.name:
        return None
    return _response(403, f"Permission denied: {name!r} is reserved for the user {owner!r}.")


def authenticate() -> Authorization | Response:
    """MLflow's `authorization_function`: an Authorization naming the caller, or the
    response that refuses the request."""
    settings, _ = _state()
    if request.method == "GET" and request.path in _open_paths() and settings.admin_username:
        return Authorization("basic", {"username": settings.admin_username, "password": ""})
    identity = identify()
    if isinstance(identity, Response):
        return identity
    refusal = _reserved_experiment_refusal(identity)
    if refusal is not None:
        return refusal
    attribution.stamp(request, identity.name)
    return Authorization("basic", {"username": identity.name, "password": ""})
