"""Requests to the in-cluster MLflow carry the pod's JupyterHub token: nothing to set up.

MLflow calls `NebariHubAuthProvider` (entry point `mlflow.request_auth_provider`)
when `MLFLOW_TRACKING_AUTH=nebari-jupyterhub`, which the plugin injects into user
pods, and hands its `requests` auth object every request to the tracking server
(REST, artifact proxy). That object adds `Authorization: Bearer
$JUPYTERHUB_API_TOKEN`, read at each request, only when:
- the request goes to the in-cluster server the pod was given
  (`NEBARI_MLFLOW_SERVER`, scheme and host of the injected tracking URI): the
  token never leaves for another host, whatever the code sets as tracking URI;
- the request has no Authorization of its own (explicit MLflow credentials,
  MLFLOW_TRACKING_TOKEN or USERNAME/PASSWORD, win).
A workflow token (notebook/tokens.py), while valid, goes before the pod's token: it
outlives the server, whose token JupyterHub deletes when it stops. A request to its
MLflow also has that token kept valid (keeper.py: renewed in JupyterLab, made by a
workflow step that has none; in the background, a clock read on this thread).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from . import flush
from .keeper import keep_fresh
from .tokens import saved_token

PROVIDER_NAME = "nebari-jupyterhub"
SERVER_ENV = "NEBARI_MLFLOW_SERVER"
TOKEN_ENV = "JUPYTERHUB_API_TOKEN"


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


class HubTokenAuth:
    """A `requests` auth callable (requests.auth.AuthBase's protocol)."""

    def __call__(self, request):
        server = os.environ.get(SERVER_ENV, "")
        if (
            server
            and "Authorization" not in request.headers
            and _origin(request.url) == _origin(server)
        ):
            keep_fresh()
            token = saved_token() or os.environ.get(TOKEN_ENV, "")
            if token:
                request.headers["Authorization"] = f"Bearer {token}"
        return request


class NebariHubAuthProvider:
    """MLflow's RequestAuthProvider interface (get_name, get_auth), duck-typed as MLflow's
    registry uses it, so this module imports nothing (the plugin reads its names)."""

    def get_name(self) -> str:
        return PROVIDER_NAME

    def get_auth(self) -> HubTokenAuth:
        # A process talking to this server (MlflowClient too, without start_run): what
        # it logs asynchronously is sent when it exits (flush.py).
        flush.install()
        return HubTokenAuth()
