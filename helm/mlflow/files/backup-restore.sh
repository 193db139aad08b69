#!/usr/bin/env bash
# The postgres image's side of a restore (the restore pod's `restore` container):
# `bash backup-restore.sh`. Replaces what the database holds by the dump
# backup_store.py's `fetch` put in $MLFLOW_BACKUP_WORK, all or nothing. One
# transaction: first every table, view, sequence and type the role owns in schema
# public goes (also those newer than the backup: a restored older schema is upgraded
# again and must not find them), then pg_restore's script; COMMIT is sent only when
# pg_restore read the whole file, so a failure leaves the database as it was. The
# database is the libpq service `fetch` wrote (pg_service.conf: no password on argv).
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
