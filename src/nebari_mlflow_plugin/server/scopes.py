"""Which JupyterHub tokens are meant for MLflow, decided from the `scopes` that
`/hub/api/user` returns for the token.

JupyterHub's own rule for a service (`HubAuth.access_scopes`, `check_scopes`): a token
is good for service X only with `access:services!service=X` or `access:services`.
Anything else a token can identify its owner with, it cannot act for them here: above
all the OAuth token JupyterHub gives another user's server or app when its owner is a
visitor there (its scopes name the visitor and the visited server, nothing more).

One more kind is accepted: a server's own token (`JUPYTERHUB_API_TOKEN` of the
owner's pod, Argo steps that copy its env), recognised by
`access:servers!server=<its owner>/<server name>`. Only a server's own token and
the OAuth tokens its owner's own browser hands to their own servers carry a server
filter on the owner's own name; a visitor's token names the visited owner instead.
It keeps the pods of users who have not logged in again since the MLflow access role
was created working (JupyterHub grants `Spawner.server_token_scopes` only as far as
the user holds them). Docs: Authentication and permissions, "Credentials"; DESIGN notes
in the report of issue #19.
"""

from __future__ import annotations

from collections.abc import Iterable

ACCESS_ALL_SERVICES = "access:services"

# What a workflow step or scheduled job sends instead of its server's token, and how to
# have one (notebook/keeper.py, notebook/tokens.py).
WORKFLOW_TOKEN_ADVICE = (
    "Workflow steps and scheduled jobs send instead the workflow token kept in "
    "~/.config/nebari-mlflow/workflow-token.json, which your JupyterLab server keeps valid "
    "whenever MLflow is used there: start your server, use MLflow there once (or run "
    "`python -m nebari_mlflow_plugin.notebook.tokens`) and submit again. A job still "
    "running more than half of mlflow.auth.workflow_token_hours (36 h by default) after you "
    "last used MLflow in JupyterLab needs a longer token, e.g. "
    "`python -m nebari_mlflow_plugin.notebook.tokens --hours 72` "
    "(docs/data-scientists.md#workflows-and-scheduled-jobs)"
)

UNKNOWN_TOKEN = (
    "JupyterHub does not know this token: it expired, was revoked, or was the token of a "
    "JupyterLab server that has since stopped (JupyterHub deletes a server's "
    "JUPYTERHUB_API_TOKEN when the server stops; Nebari stops idle servers after 30 "
    "minutes). " + WORKFLOW_TOKEN_ADVICE
)


def access_scope(service: str) -> str:
    """The scope a token needs to be good for MLflow's JupyterHub service."""
    return f"{ACCESS_ALL_SERVICES}!service={service}"


def own_server(granted: Iterable[str], owner: str) -> bool:
    """The token carries access to one of its owner's own servers (a server's token)."""
    prefix = f"access:servers!server={owner}/"
    return any(scope.startswith(prefix) for scope in granted)


def meant_for_mlflow(granted: Iterable[str], owner: str, service: str) -> bool:
    granted = set(granted)
    if ACCESS_ALL_SERVICES in granted or access_scope(service) in granted:
        return True
    return own_server(granted, owner)


def not_meant_for_mlflow(owner: str, service: str) -> str:
    return (
        f"this JupyterHub token of {owner!r} was not issued for MLflow: it carries neither "
        f"{access_scope(service)!r} nor {ACCESS_ALL_SERVICES!r} (a token JupyterHub gave another "
        "user's server or app when you visited it only identifies you). Use your JupyterLab "
        "server's JUPYTERHUB_API_TOKEN, a workflow token "
        "(`python -m nebari_mlflow_plugin.notebook.tokens`), or a token made on "
        f"/hub/token with the scope {access_scope(service)!r} "
        "(docs/admin/auth.md#credentials)"
    )


def stopped_server(owner: str) -> str:
    return (
        f"this was the token of a JupyterLab server of {owner!r}, and that server has "
        "stopped: JupyterHub deletes a server's JUPYTERHUB_API_TOKEN when the server stops "
        "(Nebari stops idle servers after 30 minutes). " + WORKFLOW_TOKEN_ADVICE
    )
