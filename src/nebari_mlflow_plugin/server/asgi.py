"""The app the server runs: MLflow's basic-auth app, with artifact transfers streamed
under `--static-prefix` as they are without it.

MLflow 3.17 serves artifact downloads and uploads natively on ASGI (a file response,
an upload streamed to the store), but registers those routes without the static
prefix, so under `--static-prefix /mlflow` (Nebari's path routing) every transfer
falls through to Flask behind the WSGI bridge, which reads a whole upload into
memory and sends a download ~10x slower. Here a request for exactly the routes
MLflow's own permission middleware checks natively (GET and PUT of
`<prefix>/(ajax-)api/2.0/mlflow-artifacts/artifacts/...`) reaches the app at the
unprefixed path those routes have: the same route and the same permission check
(`_find_fastapi_validator`) as on a server without a prefix. Everything else goes
unchanged to MLflow, which decides as before. Traces sent through OTLP record their
sender (`otlp`).

Started by `mlflow server --app-name nebari-auth`: the delivered dist-info
(render/server_delivery.py `metadata_files`) declares this factory as an `mlflow.app` entry
point, MLflow's supported way to choose the app (how `basic-auth` itself is found).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from . import otlp

_logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
Claims = Callable[[str, str], bool]


class PrefixedArtifacts:
    """Hands `<prefix><path>` to `app` as `<path>` when `claims(path, method)`: the
    artifact routes MLflow streams and checks natively, and nothing else."""

    def __init__(self, app: ASGIApp, prefix: str, claims: Claims) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/")
        self.claims = claims

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.prefix:
            path: str = scope["path"]
            if path.startswith(self.prefix + "/"):
                rest = path[len(self.prefix) :]
                if self.claims(rest, scope["method"]):
                    scope = dict(scope, path=rest)
                    raw = scope.get("raw_path")
                    if isinstance(raw, bytes) and raw.startswith(self.prefix.encode()):
                        scope["raw_path"] = raw[len(self.prefix) :]
        await self.app(scope, receive, send)


def _native_artifact_claims() -> Claims | None:
    """MLflow's own test for "served and authorized natively", or None when this MLflow
    has no such test (then nothing is redirected: slower, never less checked)."""
    from mlflow.server import auth as mlflow_auth

    claims = getattr(mlflow_auth, "_is_native_fastapi_proxy_artifact_path", None)
    if not callable(claims) or not claims("/api/2.0/mlflow-artifacts/artifacts/0/a", "GET"):
        return None
    return claims


def create_app() -> Any:
    """MLflow's basic-auth app (`mlflow.server.auth:create_app`), artifacts streamed,
    OTLP traces attributed."""
    from mlflow.server.auth import create_app as basic_auth_app
    from mlflow.server.handlers import STATIC_PREFIX_ENV_VAR

    app = basic_auth_app()
    if not hasattr(app, "router"):  # Flask (gunicorn/waitress)
        return app
    prefix = os.environ.get(STATIC_PREFIX_ENV_VAR, "")
    otlp.install(app, prefix)
    if not prefix:
        return app
    claims = _native_artifact_claims()
    if claims is None:
        _logger.warning(
            "nebari-mlflow: this MLflow does not say which artifact routes it checks "
            "natively; artifact transfers under %s go through Flask (slower)",
            prefix,
        )
        return app
    return PrefixedArtifacts(app, prefix, claims)
