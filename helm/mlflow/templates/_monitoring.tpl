{{/* Monitoring add-on (templates/monitoring*.yaml): names and selectors shared by the
ServiceMonitors, the PrometheusRule and the PostgreSQL exporter. */}}

{{- define "mlflow.postgresExporterName" -}}
{{- printf "%s-postgres-exporter" (include "mlflow.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The exporter runs only beside the chart's own PostgreSQL: an external database's
URI is SQLAlchemy's, not one the exporter takes. */}}
{{- define "mlflow.postgresExporterEnabled" -}}
{{- if and .Values.monitoring.enabled .Values.monitoring.postgresExporter.enabled (eq .Values.database.mode "internal") }}true{{ end -}}
{{- end }}

{{/* Labels the Prometheus selects ServiceMonitors and PrometheusRules by. */}}
{{- define "mlflow.monitoringLabels" -}}
{{ include "mlflow.labels" . }}
{{- with .Values.monitoring.labels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "mlflow.validateMonitoring" -}}
{{- if and .Values.monitoring.enabled (not .Values.server.exposePrometheus) }}
{{- fail "monitoring.enabled needs server.exposePrometheus: true (the server serves no metrics otherwise)" }}
{{- end }}
{{- end }}
