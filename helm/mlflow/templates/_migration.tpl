{{/* The schema migration every server pod runs before MLflow starts (the
`migrate-database` init container of the Deployment). A failure exits non-zero
with one clear line, so the kubelet re-runs it with back-off and the pod
converges by itself once the database is back; there is no Helm hook to block a
release or to re-run by hand. Arguments: "upgrade" (or "check" when
migration.enabled is false) and the seconds to wait for the database and for the
migration lock. The URI comes from the environment, never the command line. */}}
{{- define "mlflow.migrationScript" -}}
import os, sys, time, traceback

import sqlalchemy
from sqlalchemy import text
from mlflow.store.db import utils


def fail(message):
    sys.exit(f"mlflow schema migration failed: {message} (the kubelet re-runs this init container)")


mode, wait = sys.argv[1], int(sys.argv[2])
uri = os.environ["MLFLOW_BACKEND_STORE_URI"]
try:
    backend = sqlalchemy.engine.make_url(uri).get_backend_name()  # postgres..., mysql, sqlite
except sqlalchemy.exc.ArgumentError:
    fail("MLFLOW_BACKEND_STORE_URI is not a database URL")  # the message would show the URI
# Bounded connection attempts: an unreachable host must not hang the wait loop.
timeouts = {"connect_timeout": 5} if backend.startswith(("postgres", "mysql")) else {}
engine = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool, connect_args=timeouts)
# A session-level lock, taken on its own connection while the schema changes, so
# replicas starting together migrate one after the other; closing the connection
# releases it (also when this process dies). Other dialects (SQLite, MSSQL)
# migrate without a lock.
LOCKS = {
    "postgres": "SELECT pg_try_advisory_lock(4242424242)",
    "mysql": "SELECT GET_LOCK('mlflow-schema-migration', 0)",
}
take_lock = next((sql for prefix, sql in LOCKS.items() if backend.startswith(prefix)), None)


def reason(exc):
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def until(ready, what):
    """ready() until it is true, for at most `wait` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            result = ready()
            if result:
                return result
            problem = "not yet"
        except sqlalchemy.exc.DBAPIError as exc:
            problem = reason(exc)
        if time.monotonic() >= deadline:
            fail(f"waited {wait} s for {what}: {problem}")
        print(f"waiting for {what}: {problem}", flush=True)
        time.sleep(2)


def migrate():
    before = utils._get_schema_version(engine)
    if utils._is_empty_database(engine):
        utils._initialize_tables(engine)
    else:
        utils._upgrade_db(engine)
    print(f"database schema at {utils._get_schema_version(engine)} (was {before})", flush=True)


def check():
    current, head = utils._get_schema_version(engine), utils._get_latest_schema_revision()
    if current not in (None, head) and not utils._is_empty_database(engine):
        fail(f"schema at {current}, this MLflow needs {head}; migration.enabled is false: "
             "back up the database and run `mlflow db upgrade` by hand")


# The lock's own connection; reaching it is the wait for the database.
connection = until(lambda: engine.connect().execution_options(isolation_level="AUTOCOMMIT"),
                   "the database")
try:
    if mode == "check":
        check()
    else:
        if take_lock:
            until(lambda: connection.execute(text(take_lock)).scalar() == 1,
                  "the migration lock (another replica is migrating)")
        migrate()
except SystemExit:
    raise
except Exception as exc:
    traceback.print_exc()
    fail(f"{type(exc).__name__}: {reason(exc)}")
finally:
    connection.close()
{{- end }}
