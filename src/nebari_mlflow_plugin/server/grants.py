"""What a verified person is in MLflow's own permission store, kept in step with
Nebari each time their identity is (re)verified (at most once per cache TTL):

- the user exists (created on first sight, with a random password nobody knows),
  and is an MLflow admin exactly when JupyterHub says they are an admin;
- their `users/<name>` experiment, if it exists, is theirs to MANAGE;
- experiments and registered models tagged `nebari.share.<group>` = READ | EDIT |
  MANAGE grant that level to members of <group> (a JupyterHub group, which Nebari
  fills from Keycloak: `developer` and `/developer` both name `/developer`).
  A grant only ever raises a permission; removing the tag does not revoke it.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from typing import Any

from .identity import Identity

SHARE_TAG_PREFIX = "nebari.share."
USER_EXPERIMENT_PREFIX = "users/"
LEVELS = ("READ", "USE", "EDIT", "MANAGE")
SHAREABLE = ("READ", "EDIT", "MANAGE")

_logger = logging.getLogger(__name__)


def _stores() -> tuple[Any, Any, Any]:
    # Imported late: the server has set the stores up by the time a request arrives.
    from mlflow.server import handlers
    from mlflow.server.auth import store

    return store, handlers._get_tracking_store(), handlers._get_model_registry_store()


def group_key(group: str) -> str:
    return group.strip().strip("/")


def _raise(get: Any, create: Any, update: Any, level: str) -> None:
    """Set a permission to `level` unless it already is at least that."""
    from mlflow.exceptions import MlflowException

    try:
        current = get().permission
    except MlflowException:
        with contextlib.suppress(MlflowException):  # another worker created it just now
            create(level)
        return
    if current in LEVELS and LEVELS.index(current) < LEVELS.index(level):
        update(level)


def ensure_user(identity: Identity) -> None:
    from mlflow.exceptions import MlflowException

    store, _, _ = _stores()
    if not store.has_user(identity.name):
        with contextlib.suppress(MlflowException):  # created by another worker in between
            store.create_user(identity.name, secrets.token_urlsafe(32), is_admin=identity.admin)
        return
    if store.get_user(identity.name).is_admin != identity.admin:
        store.update_user(identity.name, is_admin=identity.admin)


def _shared(search: Any, group: str) -> list[tuple[Any, str]]:
    """Entities tagged for `group` (with or without the leading slash), with the level."""
    found = []
    for key in {f"{SHARE_TAG_PREFIX}{group}", f"{SHARE_TAG_PREFIX}/{group}"}:
        token = None
        while True:
            page = search(f"tags.`{key}` LIKE '%'", token)
            for entity in page:
                level = str(entity.tags.get(key, "")).strip().upper()
                if level in SHAREABLE:
                    found.append((entity, level))
            token = page.token
            if not token:
                break
    return found


def sync_grants(identity: Identity) -> None:
    """Bring the person's grants in MLflow's store in step with Nebari."""
    store, tracking, registry = _stores()
    name = identity.name
    experiment = tracking.get_experiment_by_name(f"{USER_EXPERIMENT_PREFIX}{name}")
    if experiment is not None:
        _grant_experiment(store, experiment.experiment_id, name, "MANAGE")
    for group in {group_key(g) for g in identity.groups if group_key(g)}:
        experiments = _shared(
            lambda f, t: tracking.search_experiments(filter_string=f, max_results=1000,
                                                     page_token=t), group)  # fmt: skip
        for entity, level in experiments:
            _grant_experiment(store, entity.experiment_id, name, level)
        models = _shared(
            lambda f, t: registry.search_registered_models(filter_string=f, max_results=1000,
                                                           page_token=t), group)  # fmt: skip
        for entity, level in models:
            _raise(
                lambda e=entity: store.get_registered_model_permission(e.name, name),
                lambda lv, e=entity: store.create_registered_model_permission(e.name, name, lv),
                lambda lv, e=entity: store.update_registered_model_permission(e.name, name, lv),
                level,
            )


def _grant_experiment(store: Any, experiment_id: str, name: str, level: str) -> None:
    _raise(
        lambda: store.get_experiment_permission(experiment_id, name),
        lambda lv: store.create_experiment_permission(experiment_id, name, lv),
        lambda lv: store.update_experiment_permission(experiment_id, name, lv),
        level,
    )


def sync(identity: Identity) -> None:
    ensure_user(identity)
    try:
        sync_grants(identity)
    except Exception:
        # A failed grant sync must not lock the person out of what they already have.
        _logger.exception("nebari-mlflow: could not sync grants of %s", identity.name)
