# Addresses of states written before the storage became conditional on var.enabled.
moved {
  from = aws_s3_bucket.artifacts
  to   = aws_s3_bucket.artifacts[0]
}

moved {
  from = aws_s3_bucket_ownership_controls.artifacts
  to   = aws_s3_bucket_ownership_controls.artifacts[0]
}

moved {
  from = aws_s3_bucket_public_access_block.artifacts
  to   = aws_s3_bucket_public_access_block.artifacts[0]
}

moved {
  from = aws_s3_bucket_versioning.artifacts
  to   = aws_s3_bucket_versioning.artifacts[0]
}

moved {
  from = aws_s3_bucket_server_side_encryption_configuration.artifacts
  to   = aws_s3_bucket_server_side_encryption_configuration.artifacts[0]
}

moved {
  from = aws_s3_bucket_policy.artifacts
  to   = aws_s3_bucket_policy.artifacts[0]
}
