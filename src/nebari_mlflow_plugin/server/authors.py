"""After taking over a 2025.10.x deployment (no auth): the authors manage what they made.

The public plugin ran MLflow without auth, so its experiments and models arrive with
no grant in the permission store; the runs and model versions still say who logged
them (`user_id`, else the `mlflow.user` tag). Run once the database is migrated and
the permission store exists (the auth-config init container, at every start; only a
database that records a takeover, table `nebari_takeover`, is touched):

- an experiment nobody holds a grant on: the author of its earliest run gets MANAGE,
  other run authors get EDIT so they keep working on their runs (the copied tables
  are left as copied: the takeover verifies their row counts, so no `nebari.creator`
  tag is added, and renaming such an experiment into `users/...` needs an admin);
- a registered model or prompt nobody holds a grant on: the author of its earliest
  version (or of that version's run) gets MANAGE, other version authors EDIT;
- authors become MLflow users (random password; admin flag from JupyterHub at their
  first login). A pod's OS user (`jovyan`, `root`) names nobody: then the home
  directory of the run's source (`/home/<name>/...`) names its author, if any. Not
  `/home/conda/`: conda-store's environments live there, and a notebook's run records
  its kernel's launcher (`/home/conda/<ns>/envs/<env>/.../ipykernel_launcher.py`) as
  its source; such runs name nobody (a user called `conda` would otherwise manage
  every notebook's experiment).

What already has a grant is left alone, so a re-run changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterable
from typing import Any

NOBODY = {"", "root", "jovyan", "unknown", "nobody"}
# Directories under /home in a Nebari pod that are nobody's home.
SHARED_HOMES = NOBODY | {"conda", "shared"}


def _author(user_id: Any, user_tag: Any, source: Any) -> str:
    """Who logged a run: its user, else its `mlflow.user`, else the home directory its
    source was in (`/home/<name>/...`: a Nebari pod mounts its user's home there, and
    its OS user is `jovyan` for everyone)."""
    for name in (user_id, user_tag):
        if str(name or "").strip().lower() not in NOBODY:
            return str(name).strip()
    match = re.match(r"/home/([^/]+)/", str(source or ""))
    return match[1] if match and match[1].lower() not in SHARED_HOMES else ""


def _authors(rows: Iterable[tuple[Any, Any]]) -> dict[str, list[str]]:
    """{resource id: [authors, earliest first]} from (resource id, author) rows in time
    order."""
    found: dict[str, list[str]] = {}
    for resource_id, author in rows:
        name = str(author or "").strip()
        if name.lower() in NOBODY:
            continue
        names = found.setdefault(str(resource_id), [])
        if name not in names:
            names.append(name)
    return found


def _granted(store: Any, resource_type: str) -> set[str]:
    from mlflow.server.auth.db.models import SqlRolePermission

    with store.ManagedSessionMaker() as session:
        rows = session.query(SqlRolePermission.resource_pattern).filter(
            SqlRolePermission.resource_type == resource_type
        )
        return {pattern for (pattern,) in rows.all()}


def grant_authors(uri: str) -> dict[str, int]:
    """Grant the authors of what a takeover brought; counts of what was granted."""
    import sqlalchemy as sa
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    engine = sa.create_engine(uri)
    counts = {"experiments": 0, "models": 0, "users": 0}
    with engine.connect() as db:
        if sa.inspect(db).has_table("nebari_takeover") is False:
            return counts
        logged = db.execute(sa.text(
            "SELECT r.run_uuid, r.experiment_id, r.user_id, u.value, s.value FROM runs r "
            "LEFT JOIN tags u ON u.run_uuid = r.run_uuid AND u.key = 'mlflow.user' "
            "LEFT JOIN tags s ON s.run_uuid = r.run_uuid AND s.key = 'mlflow.source.name' "
            "ORDER BY r.start_time, r.run_uuid"
        )).all()  # fmt: skip
        by_run = {run_uuid: _author(*names) for run_uuid, _, *names in logged}
        runs = [(experiment_id, by_run[run_uuid]) for run_uuid, experiment_id, *_ in logged]
        versions = [(name, _author(user_id, None, None) or by_run.get(run_id, ""))
                    for name, user_id, run_id in db.execute(sa.text(
            "SELECT name, user_id, run_id FROM model_versions ORDER BY creation_time, version"
        ))]  # fmt: skip
        prompts = {name for (name,) in db.execute(sa.text(
            "SELECT name FROM registered_model_tags WHERE key = 'mlflow.prompt.is_prompt' "
            "AND LOWER(value) = 'true'"
        ))}  # fmt: skip

    store = SqlAlchemyStore()
    store.init_db(uri)

    def user(name: str) -> None:
        if not store.has_user(name):
            with contextlib.suppress(MlflowException):
                store.create_user(name, secrets.token_urlsafe(32), is_admin=False)
                counts["users"] += 1

    granted = _granted(store, "experiment")
    for experiment_id, names in _authors(runs).items():
        if experiment_id in granted:
            continue
        for rank, name in enumerate(names):
            user(name)
            store.grant_user_permission(name, "experiment", experiment_id,
                                        "MANAGE" if rank == 0 else "EDIT")  # fmt: skip
        counts["experiments"] += 1
    granted_models = _granted(store, "registered_model") | _granted(store, "prompt")
    for name, names in _authors(versions).items():
        if name in granted_models:
            continue
        kind = "prompt" if name in prompts else "registered_model"
        for rank, author in enumerate(names):
            user(author)
            store.grant_user_permission(author, kind, name, "MANAGE" if rank == 0 else "EDIT")
        counts["models"] += 1
    engine.dispose()
    return counts


def main() -> None:
    counts = grant_authors(os.environ["MLFLOW_BACKEND_STORE_URI"])
    if any(counts.values()):
        print(
            f"takeover: the authors now manage what they made: {counts['experiments']} "
            f"experiments, {counts['models']} models ({counts['users']} new MLflow users)"
        )


if __name__ == "__main__":
    main()
