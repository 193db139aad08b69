# local (kind) and existing clusters: no cloud object store and no cloud identity.
# Artifacts go to a PersistentVolumeClaim the chart creates (kept on uninstall),
# or to the S3-compatible store named in mlflow.artifacts.s3.
locals {
  artifacts_destination       = ""
  service_account_annotations = {}
  pod_labels                  = {}
  server_env                  = {}
}
