#!/usr/bin/env bash
# Taking over a deployment of nebari-mlflow-plugin 2025.10.x: its database (the server
# pod's init container `takeover-database`, postgres image, before `takeover-artifacts`
# and `migrate-database`): `bash takeover-database.sh`.
# The old database is dumped and restored in ONE transaction that also records the
# takeover (table nebari_takeover): a restart mid-copy leaves the new database empty,
# a re-run after success only verifies again, and a new database holding anything
# else is refused, never overwritten. Then the rows of every table, old and new, are
# compared and reported in the termination message, which `nebari mlflow migrate
# --finish` reads before it removes the old release.
# Reads MLFLOW_BACKEND_STORE_URI (the new database), SOURCE (<release>/<database>),
# OLD_HOST, OLD_PORT, OLD_DATABASE, OLD_USER, OLD_PASSWORD, OLD_SECRET, WAIT_SECONDS.
set -euo pipefail
log="${TERMINATION_LOG:-/dev/termination-log}"  # the kubelet's termination message
fail() { echo "takeover failed: $*" | tee "$log" >&2; exit 1; }
[ -n "${OLD_PASSWORD:-}" ] || fail "the old release's database password is empty (Secret ${OLD_SECRET})"
NEW="${MLFLOW_BACKEND_STORE_URI/postgresql+psycopg2:/postgresql:}"
export PGCONNECT_TIMEOUT=5
old() { PGPASSWORD="$OLD_PASSWORD" "$@" -h "$OLD_HOST" -p "$OLD_PORT" -U "$OLD_USER" -d "$OLD_DATABASE"; }
oldsql() { old psql -X -q -tA -v ON_ERROR_STOP=1 -c "$1"; }
newsql() { psql "$NEW" -X -q -tA -v ON_ERROR_STOP=1 -c "$1"; }
deadline=$(( $(date +%s) + WAIT_SECONDS ))
wait_for() {  # $1: what, then the command that succeeds once it is there
  local what="$1"; shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "waited ${WAIT_SECONDS} s for ${what}"
    echo "takeover: waiting for ${what}"; sleep 2
  done
}
wait_for "the new database" newsql "SELECT 1"
recorded=""
if [ -n "$(newsql "SELECT to_regclass('public.nebari_takeover')")" ]; then
  recorded=$(newsql "SELECT source FROM public.nebari_takeover LIMIT 1")
fi
if [ -n "$recorded" ]; then
  [ "$recorded" = "$SOURCE" ] || fail "the new database was taken over from ${recorded}, not ${SOURCE}"
  if ! oldsql "SELECT 1" >/dev/null 2>&1; then
    # Copied before; the old release is gone (`--finish`) or down: start the server.
    echo "{\"database\":{\"source\":\"${SOURCE}\",\"verified\":false,\"old\":\"unreachable\",\"copied\":true}}" > "$log"
    echo "takeover: the database was copied from ${SOURCE} before; the old one is unreachable, nothing to verify"
    exit 0
  fi
  echo "takeover: the database was already copied from ${SOURCE}; verifying"
else
  wait_for "the old database ${OLD_HOST}:${OLD_PORT}/${OLD_DATABASE}" oldsql "SELECT 1"
  tables=$(newsql "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
  [ "$tables" = 0 ] || fail "the new database already holds ${tables} tables and no record of a takeover: refusing to overwrite it. Restore a backup or empty it, then restart the pod"
  echo "takeover: copying database ${OLD_DATABASE} from ${OLD_HOST}"
  # BEGIN..COMMIT around the dump: if pg_dump or any statement fails, psql stops
  # before COMMIT and PostgreSQL rolls the whole copy back. PostgreSQL 17's dump
  # sets transaction_timeout, unknown to older servers.
  {
    echo "BEGIN;"
    old pg_dump --no-owner --no-privileges --format=plain | sed '/^SET transaction_timeout/d' || exit 1
    echo "CREATE TABLE public.nebari_takeover (source text PRIMARY KEY, copied_at timestamptz NOT NULL DEFAULT now());"
    echo "INSERT INTO public.nebari_takeover (source) VALUES ('${SOURCE}');"
    echo "COMMIT;"
  } | psql "$NEW" -X -q -v ON_ERROR_STOP=1 >/dev/null || fail "copying the database failed (nothing was kept: the copy is one transaction)"
fi
# Rows per table, old and new; MLflow's own tables only (the old database's).
report="" mismatch=""
for table in $(oldsql "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"); do
  o=$(oldsql "SELECT count(*) FROM public.\"${table}\"")
  n=$(newsql "SELECT count(*) FROM public.\"${table}\"" 2>/dev/null || echo missing)
  report="${report}${report:+,}\"${table}\":[${o},\"${n}\"]"
  [ "$o" = "$n" ] || mismatch="${mismatch} ${table}(${o}->${n})"
done
message="{\"database\":{\"source\":\"${SOURCE}\",\"verified\":$([ -z "$mismatch" ] && echo true || echo false),\"tables\":{${report}}}}"
echo "$message" > "$log"
echo "takeover: $message"
[ -z "$mismatch" ] || [ -n "$recorded" ] || fail "row counts differ after the copy:${mismatch}"
[ -z "$mismatch" ] || echo "takeover: the old database changed since the copy:${mismatch} (those changes are not in the new deployment)"
