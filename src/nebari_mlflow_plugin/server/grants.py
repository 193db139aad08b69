"""What a verified person is in MLflow's own permission store, kept in step with
Nebari each time their identity is (re)verified (at most once per cache TTL): the
user exists (created on first sight, with a random password nobody knows), and is
an MLflow admin exactly when JupyterHub says they are an admin.

Nothing else is written here: group shares are derived at every request from the
`nebari.share.<group>` tags (sharing.py), and a `users/<name>` experiment is
<name>'s by creating it (personal.py), never by its name alone.
"""

from __future__ import annotations

import contextlib
import logging
import secrets

from .identity import Identity

_logger = logging.getLogger(__name__)


def ensure_user(identity: Identity) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth import store

    if not store.has_user(identity.name):
        with contextlib.suppress(MlflowException):  # created by another worker in between
            store.create_user(identity.name, secrets.token_urlsafe(32), is_admin=identity.admin)
        return
    if store.get_user(identity.name).is_admin != identity.admin:
        store.update_user(identity.name, is_admin=identity.admin)


def ensure_named_user(name: str) -> None:
    """A person an admin made something for, maybe before their first login (their
    admin flag comes from JupyterHub when they do)."""
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth import store

    if not store.has_user(name):
        with contextlib.suppress(MlflowException):
            store.create_user(name, secrets.token_urlsafe(32), is_admin=False)


def sync(identity: Identity) -> None:
    ensure_user(identity)
