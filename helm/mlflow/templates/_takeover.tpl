{{/* Taking over a deployment of nebari-mlflow-plugin 2025.10.x (Bitnami chart):
init containers of the server pod that run before `migrate-database`, rendered
only when takeover.release is set (the plugin sets it while the old release is in
its Terraform state). They read the old PostgreSQL and artifact store directly
(never the old server's API), copy everything, verify the counts and report them
in their termination message, which `nebari mlflow migrate --finish` reads before
it removes the old release.

takeover-database: the old database is dumped and restored in ONE transaction that
also records the takeover (table nebari_takeover): a restart mid-copy leaves the
new database empty, a re-run after success only verifies again, and a new
database holding anything else is refused, never overwritten.
takeover-artifacts: the old server's artifacts (experiment folders at the root of
its --artifacts-destination) copied into ours; files already there with the same
size are skipped, so a re-run resumes. */}}
{{- define "mlflow.takeoverDatabaseScript" -}}
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
{{- end }}

{{- define "mlflow.takeoverArtifactsScript" -}}
import json, os, posixpath, shutil, sys, tempfile

from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository


def report(message, code=0):
    text = json.dumps({"artifacts": message})
    print(f"takeover: {text}", flush=True)
    with open(os.environ.get("TERMINATION_LOG", "/dev/termination-log"), "w") as log:
        log.write(text)
    sys.exit(code)


def files(repo, path):
    """{path: size} of every file under `path`."""
    found = {}
    for item in repo.list_artifacts(path):
        if item.is_dir:
            found.update(files(repo, item.path))
        else:
            found[item.path] = item.file_size
    return found


MARKER = "nebari-takeover.json"  # at the destination's root, once verified
source_uri, destination_uri = sys.argv[1], sys.argv[2]
source, destination = get_artifact_repository(source_uri), get_artifact_repository(destination_uri)
try:
    # The old server proxied artifacts (mlflow-artifacts:/<experiment id>/...): its
    # experiments are the numbered folders at the root; anything else is not its own.
    experiments = sorted(item.path for item in source.list_artifacts()
                         if item.is_dir and item.path.isdigit())
except Exception as exc:
    if MARKER not in [item.path for item in destination.list_artifacts()]:
        raise  # not copied yet: exit non-zero, the kubelet retries
    # Copied before; the old store is gone (`--finish`) or down: start the server.
    report({"source": source_uri, "verified": False, "old": f"unreachable: {exc}"[:300],
            "copied": True})
copied = skipped = size = 0
scratch = tempfile.mkdtemp(prefix="takeover-")
for experiment in experiments:
    present = files(destination, experiment)
    for path, length in sorted(files(source, experiment).items()):
        size += length or 0
        if present.get(path) == length:
            skipped += 1
            continue
        local = source.download_artifacts(path, dst_path=scratch)
        destination.log_artifact(local, posixpath.dirname(path))
        os.remove(local)
        copied += 1
expected = {path: n for e in experiments for path, n in files(source, e).items()}
landed = {path: n for e in experiments for path, n in files(destination, e).items()}
missing = sorted(path for path, n in expected.items() if landed.get(path) != n)
result = {"source": source_uri, "verified": not missing, "files": [len(expected), len(expected) - len(missing)],
          "bytes": size, "copied": copied, "skipped": skipped, "experiments": len(experiments)}
if missing:
    result["missing"] = missing[:20]
else:
    with open(os.path.join(scratch, MARKER), "w") as marker:
        json.dump(result, marker)
    destination.log_artifact(os.path.join(scratch, MARKER))
shutil.rmtree(scratch, ignore_errors=True)
report(result, 1 if missing else 0)
{{- end }}

{{/* The old tracking volume, when the old server kept its artifacts there. */}}
{{- define "mlflow.takeoverVolumes" -}}
{{- with .Values.takeover }}
{{- if and .release .artifacts.source .artifacts.claim }}
- name: takeover-source
  persistentVolumeClaim:
    claimName: {{ .artifacts.claim }}
    readOnly: true
{{- end }}
{{- end }}
{{- end }}

{{- define "mlflow.takeoverInitContainers" -}}
{{- with .Values.takeover }}
{{- if .release }}
{{- $db := .database }}
- name: takeover-database
  image: {{ printf "%s:%s" .image.repository .image.tag }}
  imagePullPolicy: {{ .image.pullPolicy }}
  command:
    - bash
    - -c
    - |
      {{- include "mlflow.takeoverDatabaseScript" $ | nindent 6 }}
  env:
    {{- include "mlflow.databaseEnv" $ | nindent 4 }}
    - name: SOURCE
      value: {{ printf "%s/%s" .release $db.name | quote }}
    - name: OLD_HOST
      value: {{ $db.host | quote }}
    - name: OLD_PORT
      value: {{ $db.port | quote }}
    - name: OLD_DATABASE
      value: {{ $db.name | quote }}
    - name: OLD_USER
      value: {{ $db.user | quote }}
    - name: OLD_SECRET
      value: {{ $db.passwordSecret.name | quote }}
    - name: OLD_PASSWORD
      valueFrom:
        secretKeyRef:
          name: {{ $db.passwordSecret.name }}
          key: {{ $db.passwordSecret.key }}
    - name: WAIT_SECONDS
      value: {{ .waitSeconds | quote }}
    - name: HOME
      value: /tmp
  resources:
    requests: {cpu: 100m, memory: 128Mi}
    limits: {memory: 1Gi}
  securityContext:
    {{- include "mlflow.containerSecurityContext" $ | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
{{- with .artifacts }}
{{- if .source }}
- name: takeover-artifacts
  image: {{ include "mlflow.image" $ }}
  imagePullPolicy: {{ $.Values.image.pullPolicy }}
  command:
    - python3
    - -c
    - |
      {{- include "mlflow.takeoverArtifactsScript" $ | nindent 6 }}
    - {{ .source | quote }}
    - {{ include "mlflow.artifactsDestination" $ | quote }}
  env:
    {{- include "mlflow.commonEnv" $ | nindent 4 }}
    {{- with $.Values.server.platformEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- if .s3EndpointUrl }}
    # The old MinIO: S3's client reads its address and key from the environment.
    - name: MLFLOW_S3_ENDPOINT_URL
      value: {{ .s3EndpointUrl | quote }}
    {{- end }}
    {{- with .credentialsSecret }}
    {{- if .name }}
    - name: AWS_ACCESS_KEY_ID
      valueFrom:
        secretKeyRef:
          name: {{ .name }}
          key: {{ .accessKeyKey }}
    - name: AWS_SECRET_ACCESS_KEY
      valueFrom:
        secretKeyRef:
          name: {{ .name }}
          key: {{ .secretKeyKey }}
    {{- end }}
    {{- end }}
  resources:
    requests: {cpu: 100m, memory: 256Mi}
    limits: {memory: 1Gi}
  securityContext:
    {{- include "mlflow.containerSecurityContext" $ | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
    {{- if include "mlflow.usesArtifactVolume" $ }}
    - name: artifacts
      mountPath: /mlartifacts
    {{- end }}
    {{- if .claim }}
    - name: takeover-source
      mountPath: /takeover/source
      readOnly: true
    {{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
