{{/* Taking over a deployment of nebari-mlflow-plugin 2025.10.x (Bitnami chart):
init containers of the server pod that run before `migrate-database`, rendered
only when takeover.release is set (the plugin sets it while the old release is in
its Terraform state). They read the old PostgreSQL and artifact store directly
(never the old server's API), copy everything, verify the counts and report them
in their termination message, which `nebari mlflow migrate --finish` reads before
it removes the old release.

takeover-database (postgres image): files/takeover-database.sh, the database in
ONE transaction that also records the takeover.
takeover-artifacts (MLflow image): server/takeover_artifacts.py, the old server's
experiment folders, resumable. */}}
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
    {{- include "mlflow.scriptCommand" (dict "root" $ "script" "takeover-database.sh") | nindent 4 }}
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
    {{- include "mlflow.scriptsMount" $ | nindent 4 }}
{{- with .artifacts }}
{{- if .source }}
- name: takeover-artifacts
  image: {{ include "mlflow.image" $ }}
  imagePullPolicy: {{ $.Values.image.pullPolicy }}
  command:
    {{- include "mlflow.jobCommand" "takeover_artifacts" | nindent 4 }}
    - {{ .source | quote }}
    - {{ include "mlflow.artifactsDestination" $ | quote }}
  env:
    {{- include "mlflow.commonEnv" $ | nindent 4 }}
    {{- include "mlflow.serverPackageEnv" $ | nindent 4 }}
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
    {{- include "mlflow.serverPackageMount" $ | nindent 4 }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
