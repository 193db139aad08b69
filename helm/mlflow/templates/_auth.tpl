{{/* Authentication (auth.enabled): MLflow's basic-auth app with Nebari's
authorization function, delivered as the ConfigMap <fullname>-auth-package. */}}

{{- define "mlflow.authPackageDir" -}}/opt/nebari-mlflow/server{{- end }}
{{- define "mlflow.authConfigDir" -}}/var/run/mlflow-auth{{- end }}

{{- define "mlflow.authArgs" -}}
{{- if .Values.auth.enabled }}
{{- /* MLflow's basic-auth app with artifact transfers streamed under the static prefix
(nebari_mlflow_server.asgi:create_app, the mlflow.app entry point of the package's
dist-info; the chart used as is, without it, runs MLflow's own basic-auth app). */}}
- --app-name
- {{ ternary "nebari-auth" "basic-auth" (hasKey .Values.auth.metadata "entry_points.txt") }}
{{- end }}
{{- end }}

{{/* The auth ini carries the database URI (a secret), so it is written at start into a
memory-backed emptyDir by the init container below, never rendered. */}}
{{- define "mlflow.authInitContainer" -}}
{{- if .Values.auth.enabled }}
- name: auth-config
  image: {{ include "mlflow.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command:
    - python3
    - -c
    - |
      # MLflow reads the ini with configparser interpolation: a literal % is %%.
      import os
      uri = os.environ["MLFLOW_BACKEND_STORE_URI"].replace("%", "%%")
      path = os.environ["MLFLOW_AUTH_CONFIG_PATH"]
      text = (
          "[mlflow]\n"
          f"default_permission = {os.environ['AUTH_DEFAULT_PERMISSION']}\n"
          f"database_uri = {uri}\n"
          "authorization_function = nebari_mlflow_server.auth:authenticate\n"
      )
      fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
      with os.fdopen(fd, "w") as ini:
          ini.write(text)
      print(f"wrote {path} (default_permission {os.environ['AUTH_DEFAULT_PERMISSION']})")
      # MLflow creates the built-in admin only when it is missing. A database restored
      # from a backup, or kept from an earlier release, holds the admin of the deployment
      # that wrote it: give it this deployment's password (as the database role's is),
      # so the admin's Secret is always the one that works. Runs after migrate-database:
      # the database is up.
      from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore
      store = SqlAlchemyStore()
      store.init_db(os.environ["MLFLOW_BACKEND_STORE_URI"])
      admin = os.environ["MLFLOW_AUTH_ADMIN_USERNAME"]
      if store.has_user(admin):
          store.update_user(admin, password=os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"], is_admin=True)
          print(f"built-in admin {admin}: password set from its Secret")
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
{{- end }}
{{- end }}

{{- define "mlflow.authEnv" -}}
{{- if .Values.auth.enabled }}
{{- $auth := .Values.auth }}
{{- $ns := .Release.Namespace }}
- name: MLFLOW_AUTH_CONFIG_PATH
  value: {{ include "mlflow.authConfigDir" . }}/basic_auth.ini
- name: PYTHONPATH
  value: {{ include "mlflow.authPackageDir" . }}
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
- name: NEBARI_MLFLOW_HUB_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $auth.hub.tokenSecret.name }}
      key: {{ $auth.hub.tokenSecret.key }}
- name: NEBARI_MLFLOW_FORWARD_AUTH
  value: {{ default (printf "http://forwardauth-service.%s.svc:4181/" $ns) $auth.forwardAuth.url | quote }}
- name: NEBARI_MLFLOW_AUTH_CACHE_SECONDS
  value: {{ $auth.cacheSeconds | quote }}
{{- end }}
{{- end }}

{{- define "mlflow.authVolumeMounts" -}}
{{- if .Values.auth.enabled }}
- name: auth-config
  mountPath: {{ include "mlflow.authConfigDir" . }}
  readOnly: true
- name: auth-package
  mountPath: {{ include "mlflow.authPackageDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "mlflow.authVolumes" -}}
{{- if .Values.auth.enabled }}
- name: auth-config
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
- name: auth-package
  configMap:
    name: {{ include "mlflow.fullname" . }}-auth-package
    items:
      {{- range $file, $_ := .Values.auth.package }}
      - key: {{ $file }}
        path: nebari_mlflow_server/{{ $file }}
      {{- end }}
      {{- range $file, $_ := .Values.auth.metadata }}
      - key: {{ $file }}
        path: nebari_mlflow_server.dist-info/{{ $file }}
      {{- end }}
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
{{- if not .Values.auth.package }}
{{- fail "auth.package is empty: the authorization package's files are required when auth.enabled" }}
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
