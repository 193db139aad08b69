"""The auth ini MLflow's basic-auth app reads, written at every start (the init
container `auth-config`, after `migrate-database`: the database is up):

    python -m nebari_mlflow_server.auth_config

From the environment: MLFLOW_BACKEND_STORE_URI, MLFLOW_AUTH_CONFIG_PATH,
AUTH_DEFAULT_PERMISSION, MLFLOW_AUTH_ADMIN_USERNAME, MLFLOW_AUTH_ADMIN_PASSWORD.
The ini carries the database URI (a secret), so it goes to a memory-backed volume,
readable by its owner only, and is never rendered into a manifest.
"""

from __future__ import annotations

import os

# What MLflow calls for every request (server/auth.py).
AUTHORIZATION_FUNCTION = "nebari_mlflow_server.auth:authenticate"


def ini_text(uri: str, default_permission: str) -> str:
    """The [mlflow] section; MLflow reads it with configparser's interpolation, so a
    literal % (a URL-encoded password) is written %%."""
    return (
        "[mlflow]\n"
        f"default_permission = {default_permission}\n"
        f"database_uri = {uri.replace('%', '%%')}\n"
        f"authorization_function = {AUTHORIZATION_FUNCTION}\n"
    )


def write_private(path: str, text: str) -> None:
    """Write `text` to `path`, mode 0600 from the start (no window where others read)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as ini:
        ini.write(text)


def reset_admin(uri: str, admin: str, password: str) -> bool:
    """Give MLflow's built-in admin this deployment's password, if it exists.

    MLflow creates the admin only when it is missing. A database restored from a
    backup, or kept from an earlier release, holds the admin of the deployment that
    wrote it: its password becomes this deployment's (as the database role's does),
    so the admin's Secret is always the one that works."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(uri)
    if not store.has_user(admin):
        return False
    store.update_user(admin, password=password, is_admin=True)
    return True


def main() -> None:
    env = os.environ
    uri, path = env["MLFLOW_BACKEND_STORE_URI"], env["MLFLOW_AUTH_CONFIG_PATH"]
    permission = env["AUTH_DEFAULT_PERMISSION"]
    write_private(path, ini_text(uri, permission))
    print(f"wrote {path} (default_permission {permission})")
    admin = env["MLFLOW_AUTH_ADMIN_USERNAME"]
    if reset_admin(uri, admin, env["MLFLOW_AUTH_ADMIN_PASSWORD"]):
        print(f"built-in admin {admin}: password set from its Secret")
    # After a takeover of 2025.10.x: the authors of its experiments, runs and models
    # manage what they made (a no-op for any other database, or once done).
    from . import authors

    authors.main()


if __name__ == "__main__":
    main()
