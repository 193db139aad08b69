"""The schema migration every server pod runs before MLflow starts (the init container
`migrate-database`):

    python -m nebari_mlflow_server.migrate upgrade|check WAIT_SECONDS

`upgrade` brings the schema to this MLflow's (install, upgrade, a new release on a
kept volume); `check` (migration.enabled false) only refuses a schema this MLflow
cannot serve. A failure exits non-zero with one clear line, so the kubelet re-runs it
with back-off and the pod converges by itself once the database is back; there is no
Helm hook to block a release or to re-run by hand. The URI comes from the
environment (MLFLOW_BACKEND_STORE_URI), never the command line.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Any, NoReturn

# Imported before the lock is taken (MLflow takes seconds to import): the lock is held
# only while the schema changes.
import sqlalchemy
from mlflow.store.db import utils
from sqlalchemy import text

from .job_support import reason, until

# A session-level lock, taken on its own connection while the schema changes, so
# replicas starting together migrate one after the other; closing the connection
# releases it (also when this process dies). Other dialects (SQLite, MSSQL) migrate
# without a lock.
LOCKS = {
    "postgres": "SELECT pg_try_advisory_lock(4242424242)",
    "mysql": "SELECT GET_LOCK('mlflow-schema-migration', 0)",
}


def fail(message: str) -> NoReturn:
    sys.exit(f"mlflow schema migration failed: {message} (the kubelet re-runs this init container)")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m nebari_mlflow_server.migrate",
        description="Bring the database schema to this MLflow's, or check it.",
    )
    parser.add_argument("mode", choices=["upgrade", "check"])
    parser.add_argument(
        "wait", type=int, help="seconds to wait for the database and for the migration lock"
    )
    return parser.parse_args(argv)


def lock_statement(backend: str) -> str | None:
    """The statement taking the migration lock on `backend` (postgresql, mysql...)."""
    return next((sql for prefix, sql in LOCKS.items() if backend.startswith(prefix)), None)


def engine_for(uri: str) -> tuple[Any, str]:
    """(engine, backend name) of `uri`; connection attempts are bounded, so an
    unreachable host cannot hang the wait."""
    try:
        backend = sqlalchemy.engine.make_url(uri).get_backend_name()
    except sqlalchemy.exc.ArgumentError:
        fail("MLFLOW_BACKEND_STORE_URI is not a database URL")  # the message would show it
    timeouts = {"connect_timeout": 5} if backend.startswith(("postgres", "mysql")) else {}
    engine = sqlalchemy.create_engine(
        uri, poolclass=sqlalchemy.pool.NullPool, connect_args=timeouts
    )
    return engine, backend


def migrate(engine: Any) -> None:
    before = utils._get_schema_version(engine)
    if utils._is_empty_database(engine):
        utils._initialize_tables(engine)
    else:
        utils._upgrade_db(engine)
    print(f"database schema at {utils._get_schema_version(engine)} (was {before})", flush=True)


def check(engine: Any) -> None:
    current, head = utils._get_schema_version(engine), utils._get_latest_schema_revision()
    if current not in (None, head) and not utils._is_empty_database(engine):
        fail(
            f"schema at {current}, this MLflow needs {head}; migration.enabled is false: "
            "back up the database and run `mlflow db upgrade` by hand"
        )


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    uri = os.environ.get("MLFLOW_BACKEND_STORE_URI")
    if not uri:
        fail("MLFLOW_BACKEND_STORE_URI is not set")
    engine, backend = engine_for(uri)

    def lock_connection() -> Any:
        return engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    # The lock's own connection; reaching it is the wait for the database.
    connection = until(lock_connection, "the database", args.wait, fail)
    try:
        if args.mode == "check":
            check(engine)
        else:
            take_lock = lock_statement(backend)
            if take_lock:
                until(
                    lambda: connection.execute(text(take_lock)).scalar() == 1,
                    "the migration lock (another replica is migrating)",
                    args.wait,
                    fail,
                )
            migrate(engine)
    except SystemExit:
        raise
    except Exception as exc:
        traceback.print_exc()
        fail(f"{type(exc).__name__}: {reason(exc)}")
    finally:
        connection.close()


if __name__ == "__main__":
    main()
