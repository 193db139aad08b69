"""The service that vouches for a caller: JupyterHub (its tokens, also those in
MLflow's browser sessions: see login.py), called with the stdlib only.

A caller they refuse raises `Refused` (the request gets 401); a service that
cannot answer raises `Unavailable` (424 TEMPORARILY_UNAVAILABLE, auth.py: MLflow's
client retries a 503 for minutes, not a 424): an outage never lets a request in.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from . import scopes
from .identity import Identity
from .settings import Settings


class Refused(Exception):
    """The credential is not (or no longer) valid."""


class UnknownToken(Refused):
    """JupyterHub does not know the token (expired, revoked, or its server stopped)."""


class Unavailable(Exception):
    """The service that would verify the credential did not answer."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect (e.g. to a login page) is a refusal, not something to follow.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


def _get(url: str, headers: dict[str, str], timeout: float) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers, method="GET")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers or {}), b""
    except (OSError, ValueError) as exc:
        raise Unavailable(f"{urllib.parse.urlsplit(url).netloc} did not answer: {exc}") from exc


def _hub_json(settings: Settings, path: str, token: str) -> tuple[int, Any]:
    status, _, body = _get(
        f"{settings.hub_api}{path}", {"Authorization": f"token {token}"}, settings.timeout
    )
    if status >= 500:
        raise Unavailable(f"JupyterHub answered {status}")
    return status, (json.loads(body) if status == 200 and body else None)


def hub_user(settings: Settings, name: str) -> tuple[bool, tuple[str, ...]]:
    """(admin, groups) of a JupyterHub user, read with the server's own service token.
    A user JupyterHub does not know (outside its allowed groups: never let in) is refused."""
    status, model = _hub_json(settings, f"/users/{urllib.parse.quote(name, safe='')}",
                              settings.hub_token)  # fmt: skip
    if status == 404:
        raise Refused(
            f"JupyterHub does not know the user {name!r}: only users JupyterHub lets in "
            "(members of its allowed groups, who have logged in to Nebari) may use MLflow"
        )
    if status != 200:
        raise Unavailable(
            f"JupyterHub refused the MLflow service's token ({status}): check hub.services.mlflow "
            "and its role (scopes read:users, read:users:groups)"
        )
    return bool(model.get("admin")), tuple(model.get("groups") or ())


def verify_hub_token(settings: Settings, token: str) -> Identity:
    """The JupyterHub user a token belongs to, if the token was meant for MLflow
    (`scopes.meant_for_mlflow`); a server's own token is remembered as one."""
    status, model = _hub_json(settings, "/user", token)
    if status in (401, 403, 404):
        raise UnknownToken(scopes.UNKNOWN_TOKEN)
    if status != 200 or not isinstance(model, dict) or not model.get("name"):
        raise Unavailable(f"JupyterHub answered {status} without a user")
    if model.get("kind", "user") != "user":
        raise Refused(f"a JupyterHub {model.get('kind')} token is not a user's")
    name = model["name"]
    granted = model.get("scopes") or []
    if not scopes.meant_for_mlflow(granted, name, settings.hub_service):
        raise Refused(scopes.not_meant_for_mlflow(name, settings.hub_service))
    admin, groups = hub_user(settings, name)
    server = scopes.own_server(granted, name)
    return Identity(name=name, admin=admin, groups=groups,
                    source="server" if server else "hub")  # fmt: skip
