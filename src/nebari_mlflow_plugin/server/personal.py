"""`users/<name>` experiments: <name>'s alone, by creation, never by renaming.

- Only <name> (or an admin) creates an experiment whose name, normalised, is
  `users/<name>` or under it. Normalised: surrounding spaces, case, repeated and
  trailing slashes do not matter (`Users//Alice/ ` is alice's).
- The server records who created each experiment in the tag `nebari.creator`
  (a client's value is overwritten; nobody but an admin writes or deletes it).
- Renaming an experiment into any `users/...` name is refused unless the caller
  created it (and the name is theirs): a shared experiment cannot be renamed into
  someone's personal one and so taken.
- An admin creating `users/<name>` for someone makes <name> its manager (MLflow
  makes the creator one; `grant_owner` adds <name>). Nothing else gives MANAGE on a
  personal experiment: the name alone grants nothing.
"""

from __future__ import annotations

import re
from typing import Any

USER_PREFIX = "users/"
CREATOR_TAG = "nebari.creator"
_CREATE = ("/mlflow/experiments/create", "POST")
_RENAME = ("/mlflow/experiments/update", "POST")
_CREATOR_WRITES = (
    ("/mlflow/experiments/set-experiment-tag", "POST"),
    ("/mlflow/experiments/delete-experiment-tag", "POST"),
)


def normalised(name: str) -> str:
    parts = [part.strip() for part in re.split(r"/+", name.strip().lower())]
    return "/".join(part for part in parts if part)


def owner(name: Any) -> str | None:
    """Whose personal experiment the name is (lower case), or None for a shared name."""
    if not isinstance(name, str):
        return None
    folded = normalised(name)
    if not folded.startswith(USER_PREFIX):
        return None
    return folded[len(USER_PREFIX) :].split("/", 1)[0]


def _is(request: Any, route: tuple[str, str]) -> bool:
    return request.method == route[1] and request.path.endswith(route[0])


def _body(request: Any) -> dict | None:
    body = request.get_json(force=True, silent=True)
    return body if isinstance(body, dict) else None


def _reserved(name: str, who: str) -> str:
    return (
        f"Permission denied: {name!r} is the personal experiment of the user {who!r}: "
        f"only {who} creates experiments under users/{who}/ (whatever the case or slashes)."
    )


def stamp_creator(request: Any, username: str) -> None:
    """An experiment is created with `nebari.creator` = the caller."""
    body = _body(request) if _is(request, _CREATE) else None
    if body is None:
        return
    tags = [t for t in body.get("tags") or [] if isinstance(t, dict)]
    tags = [t for t in tags if str(t.get("key", "")).strip() != CREATOR_TAG]
    body["tags"] = [*tags, {"key": CREATOR_TAG, "value": username}]


def refusal(request: Any, username: str) -> str | None:
    """Why this (non-admin) request may not create, rename or re-attribute an
    experiment, or None."""
    mine = username.lower()
    if _is(request, _CREATE):
        body = _body(request) or {}
        name = body.get("name")
        who = owner(name)
        if who is not None and who != mine:
            return _reserved(name, who)
        return None
    if _is(request, _RENAME):
        body = _body(request) or {}
        name, experiment_id = body.get("new_name"), body.get("experiment_id")
        who = owner(name)
        if who is None:
            return None
        if who != mine:
            return _reserved(name, who)
        if creator(experiment_id) != username:
            return (
                f"Permission denied: only an experiment you created can be renamed to "
                f"{name!r} (a personal experiment is yours by creating it, not by renaming "
                "another into it). Create a new one, or ask a Nebari admin."
            )
        return None
    if any(_is(request, route) for route in _CREATOR_WRITES):
        body = _body(request) or {}
        if str(body.get("key", "")).strip() == CREATOR_TAG:
            return f"Permission denied: the tag {CREATOR_TAG!r} is set by the server only."
    return None


def creator(experiment_id: Any) -> str | None:
    from mlflow.exceptions import MlflowException
    from mlflow.server import handlers

    if not isinstance(experiment_id, str | int):
        return None
    try:
        experiment = handlers._get_tracking_store().get_experiment(str(experiment_id))
    except MlflowException:
        return None
    return experiment.tags.get(CREATOR_TAG)


def grant_owner(request: Any, response: Any, username: str) -> None:
    """After someone (an admin) created `users/<name>...` for <name>: <name> manages it
    (created in MLflow's user store if they never logged in yet)."""
    if not _is(request, _CREATE) or response.status_code != 200:
        return
    who = owner((_body(request) or {}).get("name"))
    payload = response.get_json(silent=True) or {}
    experiment_id = payload.get("experiment_id")
    if who is None or who == username.lower() or not experiment_id:
        return
    from mlflow.server.auth import store

    from .grants import ensure_named_user

    ensure_named_user(who)
    store.grant_user_permission(who, "experiment", str(experiment_id), "MANAGE")
