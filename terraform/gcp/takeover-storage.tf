# 2025.10.x's bucket becomes ours (mlflow.gcp.bucket_name and bucket_location must
# name it, see `nebari mlflow migrate --check`): its objects stay where they are,
# the takeover copies the old server's artifacts under our prefix. Its service
# account and bindings hold no data and are destroyed.
moved {
  from = google_storage_bucket.mlflow[0]
  to   = google_storage_bucket.artifacts[0]
}
