# 2025.10.x's bucket becomes ours (mlflow.gcp.bucket_name and bucket_location must
# name it, see `nebari mlflow migrate --check`): its objects stay where they are,
# the takeover copies the old server's artifacts under our prefix. Its service
# account and bindings hold no data and are destroyed. The move targets our
# unindexed address; gcp-moved.tf takes it on to [0] (a chain, not two moves to one
# target, which OpenTofu refuses).
moved {
  from = google_storage_bucket.mlflow[0]
  to   = google_storage_bucket.artifacts
}
