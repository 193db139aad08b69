"""Who holds what, and why a request was refused.

- `listing`: `GET <prefix>/api/2.0/mlflow/nebari/access?experiment_id=<id>` (or
  `?registered_model=<name>`) answers its managers (and admins) with every holder:
  users' grants from MLflow's permission store, the group shares from the object's
  `nebari.share.<group>` tags, what everyone else gets (`default_permission`) and who
  the admins are. Anyone else: 403.
- `forbidden` replaces MLflow's bare "Permission denied": the refusal names the
  permission the request needed, on what, and how to get it (its managers, by name
  when the caller may read the object, or a share tag). An object that does not exist
  answers 404 where the caller could read it if it did (`default_permission` READ or
  more); otherwise the refusal is the same as for an object they may not read, so it
  tells nothing about what exists.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, make_response, request

from .sharing import (
    EXPERIMENT,
    PROMPT,
    REGISTERED_MODEL,
    SHARE_TAG_PREFIX,
    permission_of,
    request_param,
)

ACCESS_PATH = "/mlflow/nebari/access"
LEVEL_ORDER = ("READ", "USE", "EDIT", "MANAGE")


def _json(status: int, payload: dict) -> Response:
    response = make_response(json.dumps(payload, indent=2), status)
    response.mimetype = "application/json"
    return response


def _text(status: int, message: str) -> Response:
    response = make_response(message, status)
    response.mimetype = "text/plain"
    return response


def _default_permission() -> str:
    from mlflow.server.auth import auth_config

    return str(auth_config.default_permission)


def _object(resource_type: str, resource_id: str) -> Any | None:
    """The experiment or registered model, or None when it does not exist."""
    from mlflow.exceptions import MlflowException
    from mlflow.server import handlers

    try:
        if resource_type == EXPERIMENT:
            return handlers._get_tracking_store().get_experiment(resource_id)
        return handlers._get_model_registry_store().get_registered_model(resource_id)
    except MlflowException:
        return None


def _grant_type(resource_type: str, entity: Any) -> str:
    if resource_type == EXPERIMENT:
        return EXPERIMENT
    return PROMPT if entity is not None and entity._is_prompt() else REGISTERED_MODEL


def holders(resource_type: str, resource_id: str) -> list[dict[str, str]]:
    """Users holding a grant on exactly this object in MLflow's permission store."""
    from mlflow.server.auth import store
    from mlflow.server.auth.db.models import (
        SqlRole,
        SqlRolePermission,
        SqlUser,
        SqlUserRoleAssignment,
    )

    with store.ManagedSessionMaker() as session:
        rows = (
            session.query(SqlUser.username, SqlRole.name, SqlRolePermission.permission)
            .join(SqlUserRoleAssignment, SqlUserRoleAssignment.user_id == SqlUser.id)
            .join(SqlRole, SqlRole.id == SqlUserRoleAssignment.role_id)
            .join(SqlRolePermission, SqlRolePermission.role_id == SqlRole.id)
            .filter(
                SqlRolePermission.resource_type == resource_type,
                SqlRolePermission.resource_pattern == str(resource_id),
            )
            .all()
        )
    found = []
    for username, role, permission in sorted(rows):
        through = "grant" if store._is_synthetic_role_name(role) else f"role {role}"
        found.append({"user": username, "permission": permission, "through": through})
    return found


def shares(entity: Any) -> list[dict[str, str]]:
    tags = entity.tags if isinstance(entity.tags, dict) else {}
    return [
        {"group": "/" + key[len(SHARE_TAG_PREFIX) :].strip().strip("/"),
         "permission": str(value).strip().upper(), "through": f"tag {key}"}
        for key, value in sorted(tags.items()) if key.startswith(SHARE_TAG_PREFIX)
    ]  # fmt: skip


def managers(resource_type: str, resource_id: str) -> list[str]:
    return sorted(
        {h["user"] for h in holders(resource_type, resource_id) if h["permission"] == "MANAGE"}
    )


def listing(username: str, admin: bool) -> Response | None:
    """The answer to the access listing, or None when the request is not one."""
    if not request.path.endswith(ACCESS_PATH) or request.method != "GET":
        return None
    experiment_id = request.args.get("experiment_id")
    model = request.args.get("registered_model")
    if bool(experiment_id) == bool(model):
        return _text(400, "Give one of ?experiment_id=<id> or ?registered_model=<name>.")
    resource_type, resource_id = (EXPERIMENT, experiment_id) if experiment_id else (
        REGISTERED_MODEL, model)  # fmt: skip
    entity = _object(resource_type, resource_id)
    if entity is None:
        return _text(404, f"No {resource_type.replace('_', ' ')} {resource_id!r}.")
    grant_type = _grant_type(resource_type, entity)
    if not admin and not permission_of(username, grant_type, resource_id, entity).can_manage:
        return _text(
            403,
            f"Permission denied: listing who has access to {resource_type.replace('_', ' ')} "
            f"{resource_id!r} needs MANAGE on it (its managers and Nebari admins list it).",
        )
    from mlflow.server.auth import store

    return _json(200, {
        "resource_type": grant_type, "resource_id": resource_id,
        "users": holders(grant_type, resource_id), "groups": shares(entity),
        "everyone": _default_permission(),
        "admins": sorted(u.username for u in store.list_users() if u.is_admin),
    })  # fmt: skip


# --- refusals -------------------------------------------------------------------------


def _needed(validator: Any) -> str:
    name = getattr(validator, "__name__", "") or ""
    if any(word in name for word in ("delete", "manage")):
        return "MANAGE"
    if any(word in name for word in ("read", "search", "view", "list")):
        return "READ"
    return "EDIT"


def _target() -> tuple[str, str, str | None] | None:
    """(kind, id, experiment id or model name for grants) of the request's object."""
    from mlflow.exceptions import MlflowException
    from mlflow.server import handlers

    run_id = request_param(request, "run_id") or request_param(request, "run_uuid")
    if run_id:
        try:
            run = handlers._get_tracking_store().get_run(run_id)
        except MlflowException:
            return "run", str(run_id), None
        return "run", str(run_id), run.info.experiment_id
    experiment_id = request_param(request, "experiment_id")
    if experiment_id:
        exists = _object(EXPERIMENT, str(experiment_id)) is not None
        return "experiment", str(experiment_id), str(experiment_id) if exists else None
    name = request_param(request, "name")
    if name and ("/registered-models/" in request.path or "/model-versions/" in request.path):
        exists = _object(REGISTERED_MODEL, str(name)) is not None
        return "registered model", str(name), str(name) if exists else None
    return None


def _can_read_anything() -> bool:
    return _default_permission() in ("READ", "USE", "EDIT", "MANAGE")


def forbidden(username: str, groups: tuple[str, ...] = ()) -> Response:
    """MLflow's refusal, explained (see the module's docstring)."""
    from mlflow.server import auth as mlflow_auth

    needed = _needed(mlflow_auth._find_validator(request))
    path, _, _ = request.path.partition("?")
    target = _target()
    if path.endswith("/mlflow/runs/create") and target and target[1] in ("0", ""):
        return _text(
            403,
            "Permission denied: runs cannot be logged to MLflow's Default experiment on "
            f"Nebari. Choose an experiment first: mlflow.set_experiment('users/{username}') "
            f"(your own), or set MLFLOW_EXPERIMENT_NAME=users/{username} in the environment.",
        )
    if target is None:
        return _text(403, f"Permission denied: this request needs {needed} permission.")
    kind, resource_id, anchor = target
    action = f"{request.method} {path.rsplit('/mlflow/', 1)[-1]}"
    if anchor is None and _can_read_anything():
        missing = f"No {kind} {resource_id!r} exists."
        return _json(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": missing})
    grant_type = EXPERIMENT if kind in ("run", "experiment") else REGISTERED_MODEL
    entity = None if anchor is None else _object(grant_type, anchor)
    grant_type = _grant_type(grant_type, entity)
    if entity is None or not permission_of(username, grant_type, anchor, entity).can_read:
        # What the caller may not read (or what does not exist, when nobody may read by
        # default): one answer for both, naming nothing they could not see.
        share = f" (the tag nebari.share.{groups[0]} = {needed})" if groups else ""
        return _text(
            403,
            f"Permission denied: {action} needs {needed} on {kind} {resource_id!r}. To get it, "
            f"ask its managers or a Nebari admin to grant it to you, or to share it with a "
            f"group you are in{share}.",
        )
    owner = f"{grant_type.replace('_', ' ')} {anchor!r}"
    on = f"{kind} {resource_id!r}" + (f" (in {owner})" if kind == "run" else "")
    names = managers(grant_type, anchor)
    who = f"its managers ({', '.join(names)})" if names else "its managers"
    share = ""
    if groups:
        share = (
            f", or to share the {grant_type.replace('_', ' ')} with a group you are in: the "
            f"tag nebari.share.{groups[0]} = {needed} on {owner}"
        )
    return _text(
        403,
        f"Permission denied: {action} needs {needed} on {on}. To get it, ask {who} or a "
        f"Nebari admin to grant it to you{share}.",
    )


def missing_alias(response: Response) -> Response:
    """MLflow answers a missing alias of a model the caller may read with 400
    INVALID_PARAMETER_VALUE; it is a thing that does not exist: 404."""
    if (
        request.method == "GET"
        and request.path.endswith("/registered-models/alias")
        and response.status_code == 400
    ):
        body = response.get_json(silent=True) or {}
        message = str(body.get("message", ""))
        if "alias" in message and "not found" in message:
            return _json(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": message})
    return response
