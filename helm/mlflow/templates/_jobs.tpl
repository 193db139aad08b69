{{/* How pods receive the programs the chart runs, none of them inline:
- Python (MLflow image): modules of the plugin's server package (values
  `serverPackage`, the ConfigMap <fullname>-server-package), mounted read-only as
  the top-level package `nebari_mlflow_server` and run as
  `python3 -m nebari_mlflow_server.<job> ARG...`; beside it its dist-info (values
  `serverPackageMetadata`, same ConfigMap) declares the mlflow.app `nebari-auth`;
- shell (postgres image: pg_dump, pg_restore, psql): the chart's files/*.sh, the
  ConfigMap <fullname>-scripts, run as `bash <dir>/<script> ARG...`. */}}

{{- define "mlflow.serverPackageDir" -}}/opt/nebari-mlflow/server{{- end }}
{{- define "mlflow.scriptsDir" -}}/opt/nebari-mlflow/scripts{{- end }}

{{/* `required` rather than `fail`: `helm lint` without the plugin's values passes. */}}
{{- define "mlflow.serverPackageCheck" -}}
{{- if not .Values.serverPackage }}
{{- required "serverPackage is empty: the files of the server package nebari_mlflow_server are required (nebari-mlflow-plugin fills it from its server/ directory)" nil }}
{{- end }}
{{- end }}

{{/* The command of a container running a job of the server package: the job's name. */}}
{{- define "mlflow.jobCommand" -}}
- python3
- -m
- nebari_mlflow_server.{{ . }}
{{- end }}

{{/* The command of a container running a chart script: dict root, script (file name). */}}
{{- define "mlflow.scriptCommand" -}}
- bash
- {{ include "mlflow.scriptsDir" .root }}/{{ .script }}
{{- end }}

{{- define "mlflow.serverPackageEnv" -}}
- name: PYTHONPATH
  value: {{ include "mlflow.serverPackageDir" . }}
{{- end }}

{{- define "mlflow.serverPackageMount" -}}
- name: server-package
  mountPath: {{ include "mlflow.serverPackageDir" . }}
  readOnly: true
{{- end }}

{{- define "mlflow.serverPackageVolume" -}}
- name: server-package
  configMap:
    name: {{ include "mlflow.fullname" . }}-server-package
    items:
      {{- range $file, $_ := .Values.serverPackage }}
      - key: {{ $file }}
        path: nebari_mlflow_server/{{ $file }}
      {{- end }}
      {{- range $file, $_ := .Values.serverPackageMetadata }}
      - key: {{ $file }}
        path: nebari_mlflow_server.dist-info/{{ $file }}
      {{- end }}
{{- end }}

{{- define "mlflow.scriptsMount" -}}
- name: scripts
  mountPath: {{ include "mlflow.scriptsDir" . }}
  readOnly: true
{{- end }}

{{- define "mlflow.scriptsVolume" -}}
- name: scripts
  configMap:
    name: {{ include "mlflow.fullname" . }}-scripts
{{- end }}

{{/* Pod annotations: a changed program restarts the pods that run it. */}}
{{- define "mlflow.programChecksums" -}}
checksum/server-package: {{ list .Values.serverPackage .Values.serverPackageMetadata | toJson | sha256sum }}
checksum/scripts: {{ (.Files.Glob "files/*.sh").AsConfig | sha256sum }}
{{- end }}
