{{/* The programs of the backup and restore pods. They talk to the database and the
artifact store directly (never to the MLflow server's API, which may require
credentials), through the clients in the MLflow image (MLflow's artifact
repositories: boto3, google-cloud-storage, azure-storage-blob, local files) and the
official postgres image (pg_dump, pg_restore, psql). Each prints its result as one
JSON line last, which `nebari mlflow backup|backups|restore` reads from the pod log. */}}

{{/* MLflow image, `python3 -c <this> ACTION [ARG...]`:
plan WAIT     (server pod) write <work>/plan when the schema is about to be upgraded
prepare       (server pod) only create the backup directory on the artifact volume
upload        send <work>/mlflow.dump + manifest.json to <root>/<name>/, then retention
list          the backups under <root>, newest first
fetch [NAME]  download a backup (default: the newest complete one) into <work>
plan-restore [NAME]  the database's row counts and the backup a restore brings back
verify NAME [--exact]  the database's row counts against the backup's manifest */}}
{{- define "mlflow.backupScript" -}}
import datetime, hashlib, json, os, shutil, sys, tempfile, time
from pathlib import Path

ACTION, ARGS = sys.argv[1], sys.argv[2:]
WORK = Path(os.environ.get("MLFLOW_BACKUP_WORK", "/backup"))
ROOT = os.environ["MLFLOW_BACKUP_ROOT"].rstrip("/")
KIND = os.environ.get("MLFLOW_BACKUP_KIND", "scheduled")
KEEP = int(os.environ.get("MLFLOW_BACKUP_KEEP", "7"))
# What a restore is checked against; every table's rows are recorded in "rows".
COUNTED = ("experiments", "runs", "metrics", "params", "tags", "registered_models", "model_versions")
DUMP, MANIFEST, CONTENTS, PLAN = "mlflow.dump", "manifest.json", "contents.txt", "plan"


def fail(message):
    if KIND == "pre-upgrade":  # in the server pod: nothing may change the schema unsaved
        message += "; the schema upgrade waits for this backup (the kubelet re-runs this container)"
    sys.exit(f"mlflow backup {ACTION} failed: {message}")


def result(**fields):
    print(json.dumps(fields, sort_keys=True), flush=True)


def repo(path=""):
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    return get_artifact_repository(f"{ROOT}/{path}".rstrip("/"))


def engine():
    import sqlalchemy
    uri = os.environ["MLFLOW_BACKEND_STORE_URI"]
    return sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool,
                                    connect_args={"connect_timeout": 5})


def reason(exc):
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def backups():
    """[(name, manifest or None)] under ROOT, newest first (names start with UTC time)."""
    found, scratch = [], tempfile.mkdtemp()
    for entry in repo().list_artifacts():
        if not entry.is_dir:
            continue
        name = entry.path.rstrip("/").rsplit("/", 1)[-1]
        try:
            path = repo(name).download_artifacts(MANIFEST, scratch)
            found.append((name, json.loads(Path(path).read_text())))
        except Exception:  # no manifest (yet): an upload in progress or one that died
            found.append((name, None))
    shutil.rmtree(scratch, ignore_errors=True)
    return sorted(found, key=lambda item: item[0], reverse=True)


def mkroot():
    if "://" not in ROOT:  # the artifact volume: the directory the server never serves
        Path(ROOT).mkdir(parents=True, exist_ok=True)


def plan(wait):
    import sqlalchemy
    mkroot()
    (WORK / PLAN).unlink(missing_ok=True)  # decided afresh at every start
    db, deadline = engine(), time.monotonic() + wait
    while True:
        try:
            with db.connect():
                break
        except sqlalchemy.exc.DBAPIError as exc:
            if time.monotonic() >= deadline:
                fail(f"waited {wait} s for the database: {reason(exc)}")
            print(f"waiting for the database: {reason(exc)}", flush=True)
            time.sleep(2)
    # As MLflow's _is_empty_database, before importing MLflow (seconds) for its head.
    if all(t.startswith("alembic_") for t in sqlalchemy.inspect(db).get_table_names()):
        print("pre-upgrade backup: new database, nothing to back up", flush=True)
        return
    from mlflow.store.db import utils
    current, head = utils._get_schema_version(db), utils._get_latest_schema_revision()
    if current == head:
        print(f"pre-upgrade backup: schema already at {head}, no backup needed", flush=True)
        return
    (WORK / PLAN).write_text(f"{current} {head}\n")
    print(f"pre-upgrade backup: schema at {current}, this MLflow upgrades it to {head}: "
          "backing it up first", flush=True)


def holds_data(counts):
    """Anything a user made (a new database holds the "Default" experiment only)."""
    return any(int(counts.get(t) or 0) > (1 if t == "experiments" else 0) for t in COUNTED)


def retention():
    """Delete complete backups of this kind beyond the newest KEEP; others stay, and so
    does the newest backup holding data, whatever its kind or age."""
    entries = backups()
    protected = next((n for n, m in entries if m and holds_data(m.get("counts") or {})), None)
    mine = [name for name, manifest in entries if manifest and manifest.get("kind") == KIND]
    for name in [n for n in mine[KEEP:] if n != protected]:
        repo().delete_artifacts(name)
        print(f"retention (keep {KEEP} {KIND}): deleted {ROOT}/{name}", flush=True)


def upload():
    dump = WORK / DUMP
    if KIND == "pre-upgrade" and not (WORK / PLAN).exists():
        print("pre-upgrade backup: not needed", flush=True)
        return
    if not dump.is_file():
        fail(f"no {dump}: the dump container did not write it")
    contents = dict(line.split(" ", 1) for line in (WORK / CONTENTS).read_text().splitlines())
    revision = contents.pop("schema_revision", None)
    rows = {table: int(count) for table, count in contents.items()}
    now = datetime.datetime.now(datetime.timezone.utc)
    name = f"{now:%Y%m%dT%H%M%SZ}-{KIND}"
    digest = hashlib.sha256()
    with dump.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    import mlflow
    manifest = {
        "name": name, "kind": KIND, "created": now.isoformat(timespec="seconds"),
        "schema_revision": revision, "counts": {t: rows.get(t, 0) for t in COUNTED},
        "rows": rows, "mlflow_version": mlflow.__version__, "format": "pg_dump --format=custom",
        "dump": {"file": DUMP, "bytes": dump.stat().st_size, "sha256": digest.hexdigest()},
    }
    if (WORK / PLAN).exists():
        manifest["upgrade"] = dict(zip(("from", "to"), (WORK / PLAN).read_text().split()))
    (WORK / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    mkroot()
    try:
        repo().log_artifact(str(dump), name)
        repo().log_artifact(str(WORK / MANIFEST), name)  # last: marks the backup complete
    except Exception as exc:
        fail(f"could not write {ROOT}/{name}: {type(exc).__name__}: {reason(exc)}")
    dump.unlink()  # the pod's scratch space is the node's disk
    print(f"backup {name} written to {ROOT}/{name}", flush=True)
    retention()
    result(backup=name, location=f"{ROOT}/{name}", manifest=manifest)


def find(name):
    entries = backups()
    complete = [(n, m) for n, m in entries if m]
    if not name:
        if not complete:
            fail(f"no complete backup in {ROOT}")
        return complete[0]
    manifest = dict(entries).get(name, False)
    if manifest is False:
        known = ", ".join(n for n, _ in complete[:5]) or "none"
        fail(f"no backup named {name!r} in {ROOT} (newest: {known})")
    if manifest is None:
        fail(f"backup {name!r} in {ROOT} has no {MANIFEST}: it is incomplete")
    return name, manifest


def libpq_service():
    """The database of MLFLOW_BACKEND_STORE_URI as a libpq service file, for the postgres
    image's tools (they cannot read SQLAlchemy URIs; a file keeps the password off argv)."""
    import sqlalchemy
    url = sqlalchemy.engine.make_url(os.environ["MLFLOW_BACKEND_STORE_URI"])
    if not url.get_backend_name().startswith("postgres"):
        fail(f"restore needs a PostgreSQL database, not {url.get_backend_name()}")
    options = {"host": url.host, "port": url.port or 5432, "dbname": url.database,
               "user": url.username, "password": url.password, **url.query}
    path = WORK / "pg_service.conf"
    path.write_text("[mlflow]\n" + "".join(f"{k}={v}\n" for k, v in options.items() if v))
    path.chmod(0o600)


def fetch(name):
    name, manifest = find(name)
    path = Path(repo(name).download_artifacts(DUMP, str(WORK)))
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != manifest["dump"]["sha256"]:
        fail(f"{ROOT}/{name}/{DUMP} does not match its manifest's sha256: not restoring it")
    (WORK / MANIFEST).write_text(json.dumps(manifest))
    libpq_service()
    result(backup=name, location=f"{ROOT}/{name}", manifest=manifest)


def current_counts():
    import sqlalchemy
    db = engine()
    tables = set(sqlalchemy.inspect(db).get_table_names())
    with db.connect() as connection:
        return {t: connection.execute(sqlalchemy.text(f"SELECT count(*) FROM {t}")).scalar()
                if t in tables else 0 for t in COUNTED}


def plan_restore(name):
    """What a restore brings back and replaces: the backup named, else the newest
    complete one holding rows the current database lacks (never one of an empty
    database over an older one with runs)."""
    current, entries = current_counts(), backups()
    listed = [{**(m or {}), "name": n, "complete": m is not None} for n, m in entries]
    if name:
        name, manifest = find(name)
        chosen = {**manifest, "name": name, "complete": True}
    else:
        chosen = next((b for b in listed if b["complete"] and any(
            int((b.get("counts") or {}).get(t) or 0) > int(current[t] or 0) for t in COUNTED)),
            None)
    result(root=ROOT, current=current, chosen=chosen, backups=listed[:20])


def verify(name, exact):
    from sqlalchemy import text
    name, manifest = find(name)
    with engine().connect() as connection:
        found = {t: connection.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in COUNTED}
    expected = manifest["counts"]
    # Exact right after the restore; once the server is back, users may add to it.
    wrong = {t: (expected[t], found[t]) for t in COUNTED
             if (found[t] != expected[t] if exact else found[t] < expected[t])}
    result(backup=name, expected=expected, found=found, exact=exact, ok=not wrong)
    if wrong:
        fail("row counts differ from the backup's manifest: " + ", ".join(
            f"{t} {e} in the backup, {f} in the database" for t, (e, f) in wrong.items()))


try:
    if ACTION == "plan":
        plan(int(ARGS[0]))
    elif ACTION == "prepare":
        mkroot()
    elif ACTION == "upload":
        upload()
    elif ACTION == "list":
        result(root=ROOT, backups=[{**(m or {}), "name": n, "complete": m is not None}
                                   for n, m in backups()])
    elif ACTION == "plan-restore":
        plan_restore(ARGS[0] if ARGS else "")
    elif ACTION == "fetch":
        fetch(ARGS[0] if ARGS else "")
    elif ACTION == "verify":
        verify(ARGS[0] if ARGS else "", "--exact" in ARGS)
    else:
        fail(f"unknown action {ACTION!r}")
except SystemExit:
    raise
except Exception as exc:
    import traceback
    traceback.print_exc()
    fail(f"{type(exc).__name__}: {reason(exc)}")
{{- end }}

{{/* postgres image, `bash -c <this> dump [--if-planned]`: pg_dump into <work>, then the
rows of each table and the schema revision read back from the file itself (so the
manifest describes exactly what the file holds, and the file is known readable). */}}
{{- define "mlflow.dumpScript" -}}
set -euo pipefail
work="${MLFLOW_BACKUP_WORK:-/backup}"
if [ "${1:-}" = "--if-planned" ] && [ ! -s "$work/plan" ]; then
  echo "pre-upgrade backup: not needed"
  exit 0
fi
rm -f "$work/mlflow.dump.partial"
if ! pg_dump --format=custom --file="$work/mlflow.dump.partial" --dbname="$MLFLOW_BACKUP_DATABASE"; then
  echo "mlflow backup dump failed: pg_dump could not read the database (see above)" >&2
  exit 1
fi
pg_restore --data-only --file=- "$work/mlflow.dump.partial" | awk '
  /^COPY / { split($2, qualified, "."); table = qualified[2]; rows = 0; copying = 1; next }
  copying && $0 == "\\." { print table, rows; copying = 0; next }
  copying { rows++; if (table == "alembic_version") revision = $0 }
  END { if (revision != "") print "schema_revision", revision }
' > "$work/contents.txt"
mv "$work/mlflow.dump.partial" "$work/mlflow.dump"
echo "dumped $(stat -c %s "$work/mlflow.dump") bytes"
{{- end }}

{{/* postgres image, `bash -c <this>`: replace what the database holds by the fetched
dump, all or nothing. One transaction: first every table, view, sequence and type
the role owns in schema public goes (also those newer than the backup: a restored
older schema is upgraded again and must not find them), then pg_restore's script;
COMMIT is sent only when pg_restore read the whole file, so a failure leaves the
database as it was. */}}
{{- define "mlflow.restoreScript" -}}
set -euo pipefail
work="${MLFLOW_BACKUP_WORK:-/backup}"
export PGSERVICEFILE="$work/pg_service.conf" PGSERVICE=mlflow
if [ ! -s "$work/mlflow.dump" ]; then
  echo "mlflow restore failed: no dump in $work (the fetch container did not write it)" >&2
  exit 1
fi
{
  echo 'BEGIN;'
  cat <<'SQL'
DO $$
DECLARE item record;
BEGIN
  FOR item IN
    SELECT format('DROP %s IF EXISTS %I.%I CASCADE',
                  CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                 WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
                  n.nspname, c.relname) AS statement
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
      AND pg_has_role(c.relowner, 'USAGE')
    ORDER BY c.relkind = 'S'
  LOOP
    EXECUTE item.statement;
  END LOOP;
  FOR item IN
    SELECT format('DROP TYPE IF EXISTS %I.%I CASCADE', n.nspname, t.typname) AS statement
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd') AND pg_has_role(t.typowner, 'USAGE')
  LOOP
    EXECUTE item.statement;
  END LOOP;
END $$;
SQL
  pg_restore --clean --if-exists --no-owner --no-privileges --file=- "$work/mlflow.dump"
  echo 'COMMIT;'
} | psql --quiet --no-psqlrc --set=ON_ERROR_STOP=1 --output=/dev/null
echo "restored $work/mlflow.dump into the database"
{{- end }}
