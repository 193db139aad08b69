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
names (with and without port), loopback, and the private ranges pod IPs come
from (what Prometheus and the kubelet send; MLflow's own default allows them). */}}
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
{{- $hosts = concat $hosts (list "10.*" "192.168.*") -}}
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

{{- define "mlflow.usesArtifactVolume" -}}
{{- if not .Values.artifacts.destination }}true{{ end -}}
{{- end }}
