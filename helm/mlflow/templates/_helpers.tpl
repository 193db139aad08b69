{{- define "mlflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mlflow.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "mlflow.postgresName" -}}
{{- printf "%s-postgres" (include "mlflow.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mlflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mlflow.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "mlflow.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.server.mlflowVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: nebari
{{- end }}

{{- define "mlflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mlflow.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mlflow.image" -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end }}

{{/* Health-probe path for the pinned MLflow version, under the static prefix.
MLflow 3.x registers /health with the static prefix (and exempts it from the
Host-header check); 2.x served it unprefixed. */}}
{{- define "mlflow.healthPath" -}}
{{- if semverCompare ">=3.0.0-0" .Values.server.mlflowVersion -}}
{{- printf "%s/health" .Values.server.staticPrefix -}}
{{- else -}}
/health
{{- end -}}
{{- end }}

{{/* Hosts MLflow accepts in the Host header: the public names, the Service's DNS
names (with and without port), loopback, the private ranges pod IPs come from (what
Prometheus and the kubelet send; MLflow's own default allows them), and the pod
ranges a cluster has beyond those (`server.podNetworkHosts`, e.g. EKS custom
networking's 100.64.0.0/10): a scrape from elsewhere is refused and reads as "down". */}}
{{- define "mlflow.allowedHosts" -}}
{{- $svc := include "mlflow.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $port := .Values.service.port | toString -}}
{{- $hosts := list -}}
{{- range .Values.server.allowedHosts }}{{ $hosts = append $hosts . }}{{ end -}}
{{- range (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) "localhost" "127.0.0.1") }}
{{- $hosts = append $hosts . -}}
{{- $hosts = append $hosts (printf "%s:%s" . $port) -}}
{{- $hosts = append $hosts (printf "%s:%d" . ($.Values.server.port | int)) -}}
{{- end -}}
{{- $hosts = concat $hosts (list "10.*" "192.168.*") .Values.server.podNetworkHosts -}}
{{- range $i := untilStep 16 32 1 }}{{ $hosts = append $hosts (printf "172.%d.*" $i) }}{{ end -}}
{{- $hosts | uniq | join "," -}}
{{- end }}

{{/* Container security context shared by every container of the chart. */}}
{{- define "mlflow.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Environment of every container that talks to the database. */}}
{{- define "mlflow.databaseEnv" -}}
{{- if eq .Values.database.mode "external" }}
- name: MLFLOW_BACKEND_STORE_URI
  valueFrom:
    secretKeyRef:
      name: {{ required "database.external.secretName is required when database.mode is external" .Values.database.external.secretName }}
      key: {{ .Values.database.external.secretKey }}
{{- else }}
{{- $internal := .Values.database.internal }}
- name: DB_USER
  value: {{ $internal.username | quote }}
- name: DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "database.internal.passwordSecret.name is required when database.mode is internal (the chart has no default password)" $internal.passwordSecret.name }}
      key: {{ $internal.passwordSecret.key }}
- name: MLFLOW_BACKEND_STORE_URI
  value: {{ printf "postgresql+psycopg2://$(DB_USER):$(DB_PASSWORD)@%s:5432/%s" (include "mlflow.postgresName" .) $internal.database | quote }}
{{- end }}
{{- end }}

{{/* Environment for the artifact store clients. */}}
{{- define "mlflow.artifactEnv" -}}
{{- with .Values.artifacts.s3 }}
{{- if .endpointUrl }}
- name: MLFLOW_S3_ENDPOINT_URL
  value: {{ .endpointUrl | quote }}
{{- end }}
{{- if .ignoreTls }}
- name: MLFLOW_S3_IGNORE_TLS
  value: "true"
{{- end }}
{{- end }}
{{- end }}

{{- define "mlflow.artifactsDestination" -}}
{{- default "/mlartifacts" .Values.artifacts.destination -}}
{{- end }}

{{/* Checks Helm's schema cannot express; included by every workload template so
`helm template` / `helm install` stop with a clear message. */}}
{{- define "mlflow.validate" -}}
{{- if not (has .Values.database.mode (list "internal" "external")) }}
{{- fail (printf "database.mode must be \"internal\" or \"external\", not %q" (toString .Values.database.mode)) }}
{{- end }}
{{- if and (eq .Values.database.mode "internal") (not .Values.database.internal.passwordSecret.name) }}
{{- fail "database.internal.passwordSecret.name is required when database.mode is internal (the chart has no default password)" }}
{{- end }}
{{- if and (eq .Values.database.mode "external") (not .Values.database.external.secretName) }}
{{- fail "database.external.secretName is required when database.mode is external (a Secret holding the SQLAlchemy URI)" }}
{{- end }}
{{- if and (include "mlflow.usesArtifactVolume" .) (gt (int .Values.replicaCount) 1) (ne .Values.artifacts.persistence.accessMode "ReadWriteMany") }}
{{- fail (printf "replicaCount=%d needs artifacts every replica can reach: set artifacts.destination or artifacts.persistence.accessMode=ReadWriteMany" (int .Values.replicaCount)) }}
{{- end }}
{{- if and .Values.server.aiGateway (not .Values.server.cryptoSecret.name) }}
{{- fail "server.aiGateway needs server.cryptoSecret.name: without a passphrase MLflow encrypts stored provider keys with its public default" }}
{{- end }}
{{- if or (not (hasPrefix "/" .Values.server.staticPrefix)) (hasSuffix "/" .Values.server.staticPrefix) }}
{{- fail (printf "server.staticPrefix %q must start with / and must not end with /" .Values.server.staticPrefix) }}
{{- end }}
{{- end }}

{{/* Pod security context of the MLflow server and migration pods (the image runs as
root by default; nothing in it needs root). */}}
{{- define "mlflow.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Environment shared by the server and the migration containers. */}}
{{- define "mlflow.commonEnv" -}}
- name: HOME
  value: /tmp
# Opt out of MLflow's usage telemetry (MLFLOW_DISABLE_TELEMETRY, and DO_NOT_TRACK,
# which MLflow also honours).
- name: MLFLOW_DISABLE_TELEMETRY
  value: "true"
- name: DO_NOT_TRACK
  value: "true"
{{- end }}

{{/* Claim names: the chart's own, or the existing claim the values name. */}}
{{- define "mlflow.artifactClaim" -}}
{{- default (printf "%s-artifacts" (include "mlflow.fullname" .)) .Values.artifacts.persistence.existingClaim -}}
{{- end }}

{{- define "mlflow.postgresClaim" -}}
{{- default (printf "%s-data" (include "mlflow.postgresName" .)) .Values.database.internal.persistence.existingClaim -}}
{{- end }}

{{- define "mlflow.usesArtifactVolume" -}}
{{- if not .Values.artifacts.destination }}true{{ end -}}
{{- end }}

{{/* MLflow 3.x server features, each set explicitly (MLflow turns both on by default),
and the passphrase for the secrets MLflow stores. */}}
{{- define "mlflow.featureEnv" -}}
- name: MLFLOW_ENABLE_AI_GATEWAY
  value: {{ .Values.server.aiGateway | toString | quote }}
- name: MLFLOW_SERVER_ENABLE_JOB_EXECUTION
  value: {{ .Values.server.jobExecution | toString | quote }}
{{- with .Values.server.cryptoSecret }}
{{- if .name }}
- name: MLFLOW_CRYPTO_KEK_PASSPHRASE
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key }}
{{- end }}
{{- end }}
{{- end }}
