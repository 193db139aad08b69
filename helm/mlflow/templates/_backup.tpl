{{/* Backups of the database (pg_dump) into the artifact store, and their restore.

Where they go: beside the artifacts, never inside what the server serves. The server
proxies every path under `--artifacts-destination` to anyone who can reach it, so a
dump there would hand the whole database (and, with auth, its users) to any client:
- an object store destination `<scheme>://<bucket>/<prefix>` -> `<...>/<prefix>-backups`
  (the server only reads keys under `<prefix>/`);
- the artifact volume -> its directory `_backups`, which the server container sees
  covered by an empty read-only mount.
Each backup is `<root>/<UTC time>-<kind>/{mlflow.dump,manifest.json}`. */}}

{{- define "mlflow.backupVolumePath" -}}/var/lib/mlflow/artifact-volume{{- end }}

{{- define "mlflow.backupOnVolume" -}}
{{- if and (include "mlflow.usesArtifactVolume" .) (not .Values.backup.destination) }}true{{ end -}}
{{- end }}

{{- define "mlflow.backupRoot" -}}
{{- if .Values.backup.destination -}}
{{- .Values.backup.destination -}}
{{- else if .Values.artifacts.destination -}}
{{- $destination := trimSuffix "/" .Values.artifacts.destination -}}
{{- if not (regexMatch "^[a-z0-9]+://[^/]+/.+" $destination) -}}
{{- fail (printf "backup: artifacts.destination %q is a bucket's root, so a backup beside it would be served too; set backup.destination or a prefix" $destination) -}}
{{- end -}}
{{- printf "%s-backups" $destination -}}
{{- else -}}
{{- printf "%s/_backups" (include "mlflow.backupVolumePath" .) -}}
{{- end -}}
{{- end }}

{{/* The schema is upgraded in the server pod (migration.enabled) and the database is
the chart's: dump it first when the upgrade will change it. */}}
{{- define "mlflow.preUpgradeBackup" -}}
{{- if and .Values.backup.enabled .Values.migration.enabled (eq .Values.database.mode "internal") }}true{{ end -}}
{{- end }}

{{/* The server pod takes part when it backs up before upgrades, or when the backups
live on its artifact volume (it creates their directory before it hides it). */}}
{{- define "mlflow.serverPodBacksUp" -}}
{{- if and .Values.backup.enabled (or (include "mlflow.preUpgradeBackup" .) (include "mlflow.backupOnVolume" .)) }}true{{ end -}}
{{- end }}

{{- define "mlflow.backupLabels" -}}
{{ include "mlflow.selectorLabels" . }}
app.kubernetes.io/component: backup
{{- end }}

{{/* libpq's view of the chart's database: a URL without the password (relocatable,
harmless on a command line) and the password in PGPASSWORD. After databaseEnv. */}}
{{- define "mlflow.libpqEnv" -}}
- name: PGPASSWORD
  value: $(DB_PASSWORD)
- name: MLFLOW_BACKUP_DATABASE
  value: {{ printf "postgresql://$(DB_USER)@%s:5432/%s" (include "mlflow.postgresName" .) .Values.database.internal.database | quote }}
{{- end }}

{{/* What the artifact store clients of the server get (endpoint, region, workload
identity env, credentials), plus where the backups are. */}}
{{- define "mlflow.backupStoreEnv" -}}
{{ include "mlflow.databaseEnv" . }}
{{- include "mlflow.artifactEnv" . }}
{{ include "mlflow.commonEnv" . }}
- name: MLFLOW_BACKUP_WORK
  value: /backup
- name: MLFLOW_BACKUP_ROOT
  value: {{ include "mlflow.backupRoot" . | quote }}
- name: MLFLOW_BACKUP_KEEP
  value: {{ .Values.backup.keep | quote }}
{{- with .Values.server.platformEnv }}
{{ toYaml . }}
{{- end }}
{{- with .Values.server.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "mlflow.backupStoreEnvFrom" -}}
{{- if or .Values.artifacts.s3.credentialsSecret .Values.server.extraEnvFrom }}
envFrom:
  {{- with .Values.artifacts.s3.credentialsSecret }}
  - secretRef:
      name: {{ . }}
  {{- end }}
  {{- with .Values.server.extraEnvFrom }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* A container of the MLflow image running server/backup_store.py: dict root, name,
args (the action), kind. */}}
{{- define "mlflow.backupStoreContainer" -}}
{{- $root := .root }}
- name: {{ .name }}
  image: {{ include "mlflow.image" $root }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  command:
    {{- include "mlflow.jobCommand" "backup_store" | nindent 4 }}
  args:
    {{- toYaml .args | nindent 4 }}
  env:
    {{- include "mlflow.backupStoreEnv" $root | nindent 4 }}
    - name: MLFLOW_BACKUP_KIND
      value: {{ .kind | quote }}
    {{- include "mlflow.serverPackageEnv" $root | nindent 4 }}
  {{- include "mlflow.backupStoreEnvFrom" $root | nindent 2 }}
  resources:
    {{- toYaml $root.Values.backup.resources | nindent 4 }}
  securityContext:
    {{- include "mlflow.containerSecurityContext" $root | nindent 4 }}
  volumeMounts:
    - name: backup-work
      mountPath: /backup
    - name: tmp
      mountPath: /tmp
    {{- if include "mlflow.backupOnVolume" $root }}
    - name: {{ .volume | default "artifacts" }}
      mountPath: {{ include "mlflow.backupVolumePath" $root }}
    {{- end }}
    {{- include "mlflow.serverPackageMount" $root | nindent 4 }}
{{- end }}

{{/* A container of the postgres image running files/backup-<script>.sh: dict root, name,
script ("dump"/"restore"), args. */}}
{{- define "mlflow.backupPostgresContainer" -}}
{{- $root := .root }}
{{- $image := $root.Values.database.internal.image }}
- name: {{ .name }}
  image: {{ printf "%s:%s" $image.repository $image.tag }}
  imagePullPolicy: {{ $image.pullPolicy }}
  command:
    {{- include "mlflow.scriptCommand" (dict "root" $root "script" (printf "backup-%s.sh" .script)) | nindent 4 }}
  {{- with .args }}
  args:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  env:
    - name: HOME
      value: /tmp
    - name: MLFLOW_BACKUP_WORK
      value: /backup
    {{- if eq .script "dump" }}
    {{- include "mlflow.databaseEnv" $root | nindent 4 }}
    {{- include "mlflow.libpqEnv" $root | nindent 4 }}
    {{- end }}
  resources:
    {{- toYaml $root.Values.backup.resources | nindent 4 }}
  securityContext:
    {{- include "mlflow.containerSecurityContext" $root | nindent 4 }}
  volumeMounts:
    - name: backup-work
      mountPath: /backup
    - name: tmp
      mountPath: /tmp
    {{- include "mlflow.scriptsMount" $root | nindent 4 }}
{{- end }}

{{/* The pod of the backup and restore Jobs: the server's identity (ServiceAccount,
pod labels such as Azure's workload-identity label), node selector and security. */}}
{{- define "mlflow.backupPodTemplate" -}}
{{- $root := .root }}
metadata:
  labels:
    {{- include "mlflow.backupLabels" $root | nindent 4 }}
    {{- with $root.Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  restartPolicy: Never
  serviceAccountName: {{ include "mlflow.serviceAccountName" $root }}
  # Cloud workload identity mounts its own projected token; the Kubernetes API is not used.
  automountServiceAccountToken: false
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  enableServiceLinks: false
  securityContext:
    {{- include "mlflow.podSecurityContext" $root | nindent 4 }}
  initContainers:
    {{- .initContainers | nindent 4 }}
  containers:
    {{- .containers | nindent 4 }}
  volumes:
    # The dump, staged on the node's disk between the two containers.
    - name: backup-work
      emptyDir: {}
    - name: tmp
      emptyDir: {}
    {{- if include "mlflow.backupOnVolume" $root }}
    - name: artifacts
      persistentVolumeClaim:
        claimName: {{ include "mlflow.artifactClaim" $root }}
    {{- end }}
    {{- include "mlflow.serverPackageVolume" $root | nindent 4 }}
    {{- include "mlflow.scriptsVolume" $root | nindent 4 }}
  {{- with $root.Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if and (include "mlflow.backupOnVolume" $root) (ne $root.Values.artifacts.persistence.accessMode "ReadWriteMany") }}
  # The ReadWriteOnce artifact volume is attached to the server's node: run there.
  # (`nebari mlflow restore` drops this while the server is scaled to zero.)
  affinity:
    podAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        - topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "mlflow.selectorLabels" $root | nindent 14 }}
              app.kubernetes.io/component: server
  {{- end }}
{{- end }}

{{/* Init containers of the server pod, before migrate-database. */}}
{{- define "mlflow.preUpgradeBackupContainers" -}}
{{- if include "mlflow.serverPodBacksUp" . }}
{{- $preUpgrade := include "mlflow.preUpgradeBackup" . }}
{{- $check := ternary (list "plan" (.Values.migration.waitSeconds | toString)) (list "prepare") (not (empty $preUpgrade)) }}
{{- include "mlflow.backupStoreContainer" (dict "root" . "name" "pre-upgrade-check" "args" $check "kind" "pre-upgrade") }}
{{- if $preUpgrade }}
{{ include "mlflow.backupPostgresContainer" (dict "root" . "name" "pre-upgrade-dump" "script" "dump" "args" (list "--if-planned")) }}
{{ include "mlflow.backupStoreContainer" (dict "root" . "name" "pre-upgrade-backup" "args" (list "upload") "kind" "pre-upgrade") }}
{{- end }}
{{- end }}
{{- end }}

{{/* The server container's view of the backup directory on the artifact volume: an
empty read-only directory, so the artifact proxy never serves a dump. */}}
{{- define "mlflow.backupServerMounts" -}}
{{- if and .Values.backup.enabled (include "mlflow.backupOnVolume" .) }}
- name: backups-hidden
  mountPath: /mlartifacts/_backups
  readOnly: true
{{- end }}
{{- end }}

{{- define "mlflow.backupServerVolumes" -}}
{{- if include "mlflow.serverPodBacksUp" . }}
- name: backup-work
  emptyDir: {}
{{- end }}
{{- if and .Values.backup.enabled (include "mlflow.backupOnVolume" .) }}
- name: backups-hidden
  emptyDir: {}
{{- end }}
{{- end }}

{{/* NetworkPolicy peer of PostgreSQL: the backup and restore pods. */}}
{{- define "mlflow.backupDatabasePeer" -}}
- podSelector:
    matchLabels:
      {{- include "mlflow.backupLabels" . | nindent 6 }}
{{- end }}
