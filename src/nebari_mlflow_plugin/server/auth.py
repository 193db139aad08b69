"""The MLflow server's authorization function (`authorization_function` in the auth
ini): every request is a known Nebari user, or it is refused.

Who is calling, in order:
1. `Authorization: Bearer|token <JupyterHub token>`: a user pod, terminal, Argo step
   or scheduled job (`JUPYTERHUB_API_TOKEN`), verified with JupyterHub.
2. `Authorization: Basic`: an MLflow user with a password (machines: CI, services),
   verified against MLflow's own user store.
3. MLflow's session cookie: a browser signed in through JupyterHub's OAuth
   (`login`), holding a token the hub issued to MLflow, verified as in 1.
   Nebari's forward-auth cookie is never a credential (every user's server
   receives it), nor is a client's `X-Forwarded-User`.
Anything else: 401, or for a browser's page navigation the sign-in redirect. A
JupyterHub token must be meant for MLflow (`scopes`). A verifier that cannot answer:
424 with the reason, never "allow" (see `_unverifiable`).

Then Nebari's own rules (admins are not asked): `sharing` (a share tag needs MANAGE),
`personal` (`users/<name>` by creation only), `attribution` (`mlflow.user` is the
caller's; for OTLP traces `otlp`, in the ASGI app). MLflow's basic-auth app then
authorizes the request against its permission store (admins, creators' MANAGE,
`default_permission`), whose users `grants.sync` keeps in step with Nebari and whose
grant lookups `sharing` extends with the caller's group shares; `lookups` lets that
check remember its lookups for `cache_seconds` (a refusal is always decided on fresh
data); `access` explains its refusals and lists who has access.
Verified identities are shared by every worker and replica through MLflow's database
(`shared`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

from flask import Response, current_app, g, has_request_context, make_response, request
from werkzeug.datastructures import Authorization

from . import (
    access,
    attribution,
    grants,
    login,
    lookups,
    personal,
    prompts,
    request_metrics,
    scopes,
    shared,
    sharing,
    upstream,
)
from .identity import Identity, IdentityCache
from .settings import Settings

_logger = logging.getLogger(__name__)
request_metrics.install()  # latency by kind of route, for the alerts (request_metrics.py)

UNAUTHENTICATED = (
    "Not authenticated. MLflow on Nebari accepts: a JupyterHub token "
    "(Authorization: Bearer $JUPYTERHUB_API_TOKEN; user pods send it automatically), "
    "an MLflow user's password (HTTP Basic: MLFLOW_TRACKING_USERNAME / "
    "MLFLOW_TRACKING_PASSWORD, created by an MLflow admin), or MLflow's browser session "
    "(open the MLflow page in a browser: it signs you in through JupyterHub)."
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


# Credentials whose identities every worker and replica shares: hub tokens, whether
# sent by a client or held in a browser's MLflow session (an MLflow user's password is
# checked against MLflow's own database anyway).
SHARED_KINDS = ("hub",)

_settings: Settings | None = None
_login: login.LoginSettings | None = None
_cache: IdentityCache | None = None
_shared: shared.SharedIdentities | None = None
_init_lock = threading.Lock()


def _state() -> tuple[Settings, IdentityCache]:
    global _settings, _login, _cache, _shared
    if _cache is None:
        with _init_lock:
            if _cache is None:
                settings = Settings.from_env()
                if has_request_context():  # the server's first request: its app is set up
                    app = current_app._get_current_object()
                    lookups.install(app, settings.cache_seconds, settings.cache_size)
                    _install(app)
                _shared = shared.open_store(settings.secret_key)
                _settings = settings
                _login = login.LoginSettings.from_env()
                _cache = IdentityCache(settings.cache_seconds, settings.cache_size)
    return _settings, _cache


def _install(app: Any) -> None:
    """Shares in MLflow's grant lookups; personal experiments' owners after creation."""
    from mlflow.server import auth as mlflow_auth
    from mlflow.server.auth import store

    sharing.install(store)
    bare_refusal = mlflow_auth.make_forbidden_response

    def forbidden() -> Response:
        identity = g.get("nebari_identity")
        if identity is None:
            return bare_refusal()
        try:
            return access.forbidden(identity.name, identity.groups)
        except Exception:  # an explanation that fails still refuses
            _logger.exception("nebari-mlflow: could not explain a refusal")
            return bare_refusal()

    mlflow_auth.make_forbidden_response = forbidden  # the gate looks it up at each refusal

    def after(response: Response) -> Response:
        identity = g.get("nebari_identity")
        if identity is not None:
            personal.grant_owner(request, response, identity.name)
        return access.missing_alias(response)

    # Registered directly: Flask refuses `after_request` once the app has served.
    app.after_request_funcs.setdefault(None, []).append(after)


def _response(status: int, message: str) -> Response:
    response = make_response(message, status)
    response.mimetype = "text/plain"
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="mlflow"'
    return response


# Who the caller is cannot be verified now (JupyterHub or forward-auth down). Never
# "allow"; and not 503: MLflow's client retries 408/429/5xx-gateway answers for about
# five minutes and then shows only "too many 503 error responses". 424 (Failed
# Dependency: the request failed because a service it depends on did) is retried by no
# client and keeps the reason; its body is an MLflow error, so the client raises
# `RestException: TEMPORARILY_UNAVAILABLE: <reason>` at once.
UNVERIFIABLE_STATUS = 424


def _unverifiable(reason: str) -> Response:
    message = (
        f"MLflow cannot verify who you are right now ({reason}); try again in a minute. "
        "Requests of users verified in the last cache_seconds keep working."
    )
    body = json.dumps({"error_code": "TEMPORARILY_UNAVAILABLE", "message": message})
    response = make_response(body, UNVERIFIABLE_STATUS)
    response.mimetype = "application/json"
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
    token = login.session_token(_login, request)
    if token:
        return "hub", token
    return None


def _verify(settings: Settings, kind: str, credential: str) -> Identity:
    if kind == "hub":
        identity = upstream.verify_hub_token(settings, credential)
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
    key = cache.key(*credential)
    identity = cache.get(key)
    if identity is None:
        store = _shared if credential[0] in SHARED_KINDS else None
        shared_key = store.key(*credential) if store else ""
        recalled = store.recall(shared_key, settings.cache_seconds) if store else None
        if recalled is not None:
            # Verified by another worker or replica within cache_seconds.
            identity, seconds_left = recalled
            cache.put(key, identity, ttl=seconds_left)
        else:
            try:
                with lookups.fresh():
                    identity = _verify(settings, *credential)
            except upstream.UnknownToken as exc:
                last = store.last_known(shared_key) if store else None
                reason = scopes.stopped_server(last.name) if last and last.source == "server" \
                    else str(exc)  # fmt: skip
                return _response(401, f"Not authenticated: {reason}.\n\n{UNAUTHENTICATED}")
            except upstream.Refused as exc:
                return _response(401, f"Not authenticated: {exc}.\n\n{UNAUTHENTICATED}")
            except upstream.Unavailable as exc:
                _logger.warning("nebari-mlflow: cannot verify a %s credential: %s",
                                credential[0], exc)  # fmt: skip
                return _unverifiable(str(exc))
            cache.put(key, identity)
            if store:
                store.remember(shared_key, identity)
    g.nebari_identity = identity
    sharing.remember_caller(identity)  # MLflow's native artifact routes check outside Flask
    return identity


def _refusal(identity: Identity) -> Response | None:
    """Nebari's rules MLflow's gate does not know (admins are not asked): sharing needs
    MANAGE, personal experiments are their creator's, `mlflow.user` is the server's."""
    if identity.admin:
        return None
    why = (
        personal.refusal(request, identity.name)
        or attribution.refusal(request)
        or sharing.refusal(request, identity.name)
    )
    return None if why is None else _response(403, why)


def _sign_in(settings: Settings, cache: IdentityCache) -> Response:
    """The OAuth callback (`login.callback`), with this server's hub and verification."""

    def exchange(code: str) -> tuple[str, float]:
        return login.exchange_code(f"{settings.hub_api}/oauth2/token", _login,
                                   settings.hub_token, code, settings.timeout)  # fmt: skip

    def verify(token: str) -> None:
        with lookups.fresh():
            cache.put(cache.key("hub", token), _verify(settings, "hub", token))

    try:
        return login.callback(_login, request, exchange, verify)
    except (login.LoginFailed, upstream.Refused) as exc:
        return login.failure_page(403, str(exc))
    except (upstream.Unavailable, ConnectionError, OSError) as exc:
        _logger.warning("nebari-mlflow: sign-in cannot complete: %s", exc)
        return login.failure_page(503, f"JupyterHub cannot be reached right now ({exc})")


def authenticate() -> Authorization | Response:
    """MLflow's `authorization_function`: an Authorization naming the caller, or the
    response that refuses the request (for a browser's page without a session: the
    sign-in redirect)."""
    settings, cache = _state()
    if request.method == "GET" and request.path in _open_paths() and settings.admin_username:
        return Authorization("basic", {"username": settings.admin_username, "password": ""})
    if login.is_callback(_login, request):
        return _sign_in(settings, cache)
    identity = identify()
    if isinstance(identity, Response):
        if identity.status_code == 401 and login.wants_login(_login, request):
            return login.login_redirect(_login, request)
        return identity
    if not g.get("nebari_admitted"):
        # MLflow asks again in its validators and after-request handlers: decide once.
        # Answered here: a question MLflow's API has no route for; a reader's prompt link.
        answer = access.listing(identity.name, identity.admin) or (
            None if identity.admin else prompts.link(identity.name)
        )
        refusal = answer or _refusal(identity)
        if refusal is not None:
            return refusal
        attribution.stamp(request, identity.name)
        personal.stamp_creator(request, identity.name)
        g.nebari_admitted = True
    return Authorization("basic", {"username": identity.name, "password": ""})
