"""Group shares, derived at every permission lookup from the tags as they are.

An experiment or registered model (prompts included) tagged `nebari.share.<group>` =
READ | EDIT | MANAGE gives that level to the members of <group> (a JupyterHub group,
which Nebari fills from Keycloak at each sign-in: `developer` and `/developer` both
name `/developer`).

Nothing is written to MLflow's permission store: every grant lookup of the caller
(`store.list_grants`, through which MLflow's gate and its listing filters resolve
every per-resource permission) gets one more row per share of a group the caller is
in *now* (their identity's groups, re-read from JupyterHub within `cache_seconds`).
So lowering or removing the tag, or leaving the group, ends the share; a share
added or raised elsewhere applies on the member's next request (the gate decides a
refusal again on fresh data: see lookups.py), and a withdrawn one stops allowing
within `cache_seconds`, like every other withdrawal.

The rows only add: the caller's own grants (a DENY a manager gave) still decide
within the same key, and `default_permission` stays the floor.

Writing, changing or deleting a share tag needs MANAGE on the object (`refusal`):
otherwise an EDIT share would be a MANAGE share one tag write later.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Collection
from typing import Any, NamedTuple

from flask import g, has_request_context

from . import lookups

SHARE_TAG_PREFIX = "nebari.share."
SHAREABLE = ("READ", "EDIT", "MANAGE")
EXPERIMENT = "experiment"
REGISTERED_MODEL = "registered_model"
PROMPT = "prompt"

_logger = logging.getLogger(__name__)

# The verified caller, for lookups made outside Flask's request context: MLflow checks
# its native artifact routes (asgi.py) after its bridge to the authorization function
# has closed the Flask context it made, in a thread that copies this context.
_caller: contextvars.ContextVar[Any] = contextvars.ContextVar("nebari_caller", default=None)


class Share(NamedTuple):
    resource_type: str  # experiment | registered_model (a prompt is one too)
    resource_id: str  # experiment id, or registered model name
    group: str  # normalised: no surrounding slashes or spaces
    level: str


def group_key(group: str) -> str:
    return group.strip().strip("/").strip()


def share_level(value: Any) -> str | None:
    level = str(value or "").strip().upper()
    return level if level in SHAREABLE else None


def is_share_tag(key: Any) -> bool:
    return isinstance(key, str) and key.strip().startswith(SHARE_TAG_PREFIX)


def read_shares() -> tuple[Share, ...]:
    """Every share tag in the tracking and registry stores (two indexed queries)."""
    from mlflow.server import handlers
    from mlflow.store.model_registry.dbmodels.models import SqlRegisteredModelTag
    from mlflow.store.tracking.dbmodels.models import SqlExperimentTag

    shares: list[Share] = []
    pattern = f"{SHARE_TAG_PREFIX}%"
    sources = (
        (handlers._get_tracking_store(), SqlExperimentTag, SqlExperimentTag.experiment_id,
         EXPERIMENT),
        (handlers._get_model_registry_store(), SqlRegisteredModelTag, SqlRegisteredModelTag.name,
         REGISTERED_MODEL),
    )  # fmt: skip
    for store, table, column, resource_type in sources:
        with store.ManagedSessionMaker() as session:
            rows = session.query(column, table.key, table.value).filter(table.key.like(pattern))
            for resource_id, key, value in rows.all():
                level = share_level(value)
                group = group_key(key[len(SHARE_TAG_PREFIX) :])
                if level and group:
                    shares.append(Share(resource_type, str(resource_id), group, level))
    return tuple(shares)


def rows_for(
    shares: tuple[Share, ...], groups: Collection[str], resource_types: Collection[str]
) -> list[tuple[str, str, str]]:
    """(resource_type, resource_pattern, permission) of the shares to `groups`.

    A registered model's share answers for it as a prompt too (names are unique in the
    registry, so the row of the type it is not never matches anything)."""
    mine = {group_key(group) for group in groups} - {""}
    wanted = set(resource_types)
    rows = []
    for share in shares:
        if share.group not in mine:
            continue
        types = (share.resource_type,)
        if share.resource_type == REGISTERED_MODEL:
            types = (REGISTERED_MODEL, PROMPT)
        rows += [(t, share.resource_id, share.level) for t in types if t in wanted]
    return rows


def remember_caller(identity: Any) -> None:
    """The request's verified caller, for its lookups outside Flask (see `_caller`)."""
    _caller.set(identity)


def _caller_groups(store: Any, user_id: int) -> tuple[str, ...] | None:
    """The groups of the request's verified caller when `user_id` is theirs, else None
    (a lookup about another user, e.g. an admin's permission query, gets no shares)."""
    identity = g.get("nebari_identity") if has_request_context() else _caller.get()
    if identity is None or not identity.groups:
        return None
    try:
        if store.get_user(identity.name).id != user_id:
            return None
    except Exception:  # an unknown user holds nothing
        return None
    return identity.groups


def install(store: Any) -> None:
    """Add the caller's shares to MLflow's grant lookups (once per worker)."""
    if getattr(store.list_grants, "_nebari_shares", False):
        return
    list_grants: Callable[..., list] = store.list_grants
    shares = lookups.remembered("shares", read_shares)

    from mlflow.server.auth.sqlalchemy_store import RoleGrantRow

    def with_shares(user_id: int, workspace: str, resource_types: Collection[str]) -> list:
        grants = list_grants(user_id, workspace, resource_types)
        groups = _caller_groups(store, user_id)
        if groups:
            try:
                found = shares()
            except Exception:
                # The caller keeps what they hold in MLflow's store; a share needs the tags.
                _logger.exception("nebari-mlflow: could not read the share tags")
                found = ()
            extra = rows_for(found, groups, resource_types)
            grants = [*grants, *(RoleGrantRow(*row) for row in extra)]
        return grants

    with_shares._nebari_shares = True  # type: ignore[attr-defined]
    store.list_grants = with_shares


# Every route that writes an experiment's or a registered model's (a prompt's) tags
# after it exists: (path suffix, method) -> (resource type, the field naming it).
# Creating one with share tags is its creator's act: the creator manages it.
_TAG_WRITES = {
    ("/mlflow/experiments/set-experiment-tag", "POST"): (EXPERIMENT, "experiment_id"),
    ("/mlflow/experiments/delete-experiment-tag", "POST"): (EXPERIMENT, "experiment_id"),
    ("/mlflow/registered-models/set-tag", "POST"): (REGISTERED_MODEL, "name"),
    ("/mlflow/registered-models/delete-tag", "DELETE"): (REGISTERED_MODEL, "name"),
}


def request_param(request: Any, name: str) -> Any:
    """A field of the request's JSON body, else of its query string (MLflow reads both)."""
    body = request.get_json(force=True, silent=True)
    if isinstance(body, dict) and name in body:
        return body[name]
    return request.args.get(name)


def _tag_write(request: Any) -> tuple[str, str] | None:
    for (suffix, method), target in _TAG_WRITES.items():
        if request.method == method and request.path.endswith(suffix):
            return target
    return None


def permission_of(username: str, resource_type: str, resource_id: str, entity: Any = None) -> Any:
    """`username`'s permission on an object, as MLflow's gate folds it (grants, shares,
    `default_permission`); for any grant type, prompts included."""
    from mlflow.server import auth as mlflow_auth

    workspace = getattr(entity, "workspace", None)
    return mlflow_auth._get_role_permission_or_default(
        mlflow_auth._role_permission_for_known_workspace(
            username, resource_type, str(resource_id), workspace
        )
    )


def _permission(username: str, resource_type: str, resource_id: str) -> Any:
    """The caller's permission on the object, resolved as MLflow's gate resolves it
    (shares included); None when the object does not exist (MLflow answers 404)."""
    from mlflow.exceptions import MlflowException
    from mlflow.server import handlers

    try:
        if resource_type == EXPERIMENT:
            entity = handlers._get_tracking_store().get_experiment(resource_id)
        else:
            entity = handlers._get_model_registry_store().get_registered_model(resource_id)
            resource_type = PROMPT if entity._is_prompt() else REGISTERED_MODEL
    except MlflowException:
        return None
    return permission_of(username, resource_type, resource_id, entity)


def refusal(request: Any, username: str) -> str | None:
    """Why this request may not write a share tag, or None (not a share tag write, or
    the caller manages the object). Admins are not asked."""
    target = _tag_write(request)
    if target is None or not is_share_tag(request_param(request, "key")):
        return None
    resource_type, field = target
    resource_id = request_param(request, field)
    if not isinstance(resource_id, str) or not resource_id:
        return None  # MLflow refuses the malformed request itself
    permission = _permission(username, resource_type, resource_id)
    if permission is None or permission.can_manage:
        return None
    kind = "experiment" if resource_type == EXPERIMENT else "registered model"
    key = request_param(request, "key")
    return (
        f"Permission denied: sharing needs MANAGE. Setting, changing or deleting the tag "
        f"{key!r} of {kind} {resource_id!r} gives or takes away access, so it needs MANAGE "
        f"on it; you have {permission.name}. Ask one of its managers (its creator, or a "
        "Nebari admin) to change the share."
    )
