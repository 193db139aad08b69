#!/usr/bin/env bash
# The postgres image's side of a backup (the backup pod's `dump` container, the server
# pod's `pre-upgrade-dump`): `bash backup-dump.sh [--if-planned]`.
# pg_dump into $MLFLOW_BACKUP_WORK, then the rows of each table and the schema revision
# read back from the file itself (so the manifest describes exactly what the file
# holds, and the file is known readable). --if-planned: only when backup_store.py's
# `plan` wrote <work>/plan. Reads MLFLOW_BACKUP_DATABASE (a URL without the password)
# and PGPASSWORD.
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
