#!/bin/sh
# The PostgreSQL container's postStart hook (postgres image): `sh postgres-password.sh`.
# PostgreSQL applies POSTGRES_PASSWORD only when it creates the data directory.
# Re-apply it on every start so a re-created Secret (a new password on an existing
# volume) converges. psql reads the password from the environment, so it is never on
# a command line. Never fails the container: at worst the old password stays.
for attempt in $(seq 1 120); do
  if pg_isready -q -h /var/run/postgresql -U "$POSTGRES_USER" -d "$POSTGRES_DB"; then
    psql -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -U "$POSTGRES_USER" -d "$POSTGRES_DB" <<'SQL' && exit 0
\getenv role POSTGRES_USER
\getenv password POSTGRES_PASSWORD
ALTER ROLE :"role" PASSWORD :'password';
SQL
  fi
  sleep 1
done
exit 0
