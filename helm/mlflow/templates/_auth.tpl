{{/* Authentication (auth.enabled): MLflow's basic-auth app with Nebari's
authorization function, a module of the server package (_jobs.tpl). */}}
{{- define "mlflow.authConfigDir" -}}/var/run/mlflow-auth{{- end }}

{{- define "mlflow.authArgs" -}}
{{- if .Values.auth.enabled }}
{{- /* MLflow's basic-auth app with artifact transfers streamed under the static prefix
(nebari_mlflow_server.asgi:create_app, the mlflow.app entry point of the package's
dist-info, values `serverPackageMetadata`; the chart used as is, without it, runs MLflow's own basic-auth app). */}}
- --app-name
- {{ ternary "nebari-auth" "basic-auth" (hasKey (.Values.serverPackageMetadata | default dict) "entry_points.txt") }}
{{- end }}
{{- end }}

{{/* The auth ini carries the database URI (a secret), so it is written at start into a
memory-backed emptyDir by the init container below (server/auth_config.py), never
rendered. */}}
{{- define "mlflow.authInitContainer" -}}
{{- if .Values.auth.enabled }}
- name: auth-config
  image: {{ include "mlflow.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command:
    {{- include "mlflow.jobCommand" "auth_config" | nindent 4 }}
  env:
    {{- include "mlflow.databaseEnv" . | nindent 4 }}
    - name: MLFLOW_AUTH_ADMIN_USERNAME
      value: {{ .Values.auth.adminUsername | quote }}
    - name: MLFLOW_AUTH_ADMIN_PASSWORD
      valueFrom:
        secretKeyRef:
          name: {{ .Values.auth.secret.name }}
          key: admin-password
    - name: MLFLOW_AUTH_CONFIG_PATH
      value: {{ include "mlflow.authConfigDir" . }}/basic_auth.ini
    - name: AUTH_DEFAULT_PERMISSION
      value: {{ .Values.auth.defaultPermission | quote }}
    {{- include "mlflow.serverPackageEnv" . | nindent 4 }}
  resources:
    requests: {cpu: 50m, memory: 256Mi}
    limits: {memory: 1Gi}
  securityContext:
    {{- include "mlflow.containerSecurityContext" . | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
    - name: auth-config
      mountPath: {{ include "mlflow.authConfigDir" . }}
    {{- include "mlflow.serverPackageMount" . | nindent 4 }}
{{- end }}
{{- end }}

{{- define "mlflow.authEnv" -}}
{{- if .Values.auth.enabled }}
{{- $auth := .Values.auth }}
{{- $ns := .Release.Namespace }}
- name: MLFLOW_AUTH_CONFIG_PATH
  value: {{ include "mlflow.authConfigDir" . }}/basic_auth.ini
{{ include "mlflow.serverPackageEnv" . }}
- name: MLFLOW_AUTH_ADMIN_USERNAME
  value: {{ $auth.adminUsername | quote }}
- name: MLFLOW_AUTH_ADMIN_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $auth.secret.name }}
      key: admin-password
- name: MLFLOW_FLASK_SERVER_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $auth.secret.name }}
      key: flask-secret-key
- name: NEBARI_MLFLOW_HUB_API
  value: {{ default (printf "http://hub.%s.svc:8081/hub/api" $ns) $auth.hub.apiUrl | quote }}
- name: NEBARI_MLFLOW_HUB_SERVICE
  value: {{ $auth.hub.serviceName | quote }}
- name: NEBARI_MLFLOW_HUB_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $auth.hub.tokenSecret.name }}
      key: {{ $auth.hub.tokenSecret.key }}
{{- with $auth.login }}
{{- if .clientId }}
- name: NEBARI_MLFLOW_OAUTH_CLIENT_ID
  value: {{ .clientId | quote }}
- name: NEBARI_MLFLOW_OAUTH_REDIRECT_URI
  value: {{ required "auth.login.redirectUri is required with auth.login.clientId" .redirectUri | quote }}
- name: NEBARI_MLFLOW_OAUTH_AUTHORIZE_URL
  value: {{ required "auth.login.authorizeUrl is required with auth.login.clientId" .authorizeUrl | quote }}
- name: NEBARI_MLFLOW_SESSION_SECONDS
  value: {{ .sessionSeconds | quote }}
{{- end }}
{{- end }}
- name: NEBARI_MLFLOW_AUTH_CACHE_SECONDS
  value: {{ $auth.cacheSeconds | quote }}
{{- end }}
{{- end }}

{{- define "mlflow.authVolumeMounts" -}}
{{- if .Values.auth.enabled }}
- name: auth-config
  mountPath: {{ include "mlflow.authConfigDir" . }}
  readOnly: true
{{ include "mlflow.serverPackageMount" . }}
{{- end }}
{{- end }}

{{- define "mlflow.authVolumes" -}}
{{- if .Values.auth.enabled }}
- name: auth-config
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{- end }}
{{- end }}

{{/* JupyterHub's own NetworkPolicy (z2jh) admits to the hub only pods with this label. */}}
{{- define "mlflow.authPodLabels" -}}
{{- if .Values.auth.enabled }}
hub.jupyter.org/network-access-hub: "true"
{{- end }}
{{- end }}

{{- define "mlflow.authChecks" -}}
{{- if .Values.auth.enabled }}
{{- if not .Values.auth.secret.name }}
{{- fail "auth.secret.name is required when auth.enabled (a Secret with admin-password and flask-secret-key; the chart has no default password)" }}
{{- end }}
{{- if not (has .Values.auth.defaultPermission (list "NO_PERMISSIONS" "READ" "EDIT")) }}
{{- fail (printf "auth.defaultPermission must be NO_PERMISSIONS, READ or EDIT, not %q" (toString .Values.auth.defaultPermission)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The chart's own clients of the server (the gc CronJob deletes artifacts through its
artifact proxy) authenticate as the built-in admin. */}}
{{- define "mlflow.authClientEnv" -}}
{{- if .Values.auth.enabled }}
- name: MLFLOW_TRACKING_USERNAME
  value: {{ .Values.auth.adminUsername | quote }}
- name: MLFLOW_TRACKING_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.auth.secret.name }}
      key: admin-password
{{- end }}
{{- end }}
