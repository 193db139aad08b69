# Addresses of states written before the storage became conditional on var.enabled.
moved {
  from = google_storage_bucket.artifacts
  to   = google_storage_bucket.artifacts[0]
}
