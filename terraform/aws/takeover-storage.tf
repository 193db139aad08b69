# 2025.10.x's bucket becomes ours (mlflow.aws.bucket_name must name it, see
# `nebari mlflow migrate --check`): its objects stay where they are, the takeover
# copies the old server's artifacts under our prefix. The KMS key it was created
# with keeps decrypting old objects: it is forgotten, not scheduled for deletion,
# and mlflow.aws.kms_key_arn names it. Each move targets our unindexed address and
# aws-moved.tf takes it on to [0]: two moves may not share a target, a chain may. Its IAM role and policy hold no data and are
# destroyed (old server pods lose access; nothing routes to them any more).
moved {
  from = aws_s3_bucket.artifact_storage
  to   = aws_s3_bucket.artifacts
}

moved {
  from = aws_s3_bucket_ownership_controls.artifact_storage
  to   = aws_s3_bucket_ownership_controls.artifacts
}

moved {
  from = aws_s3_bucket_public_access_block.artifact_storage
  to   = aws_s3_bucket_public_access_block.artifacts
}

moved {
  from = aws_s3_bucket_versioning.artifact_storage
  to   = aws_s3_bucket_versioning.artifacts
}

moved {
  from = aws_s3_bucket_server_side_encryption_configuration.mlflow_s3_encryption[0]
  to   = aws_s3_bucket_server_side_encryption_configuration.artifacts
}

removed {
  from = aws_kms_key.mlflow_kms_key
}

# The suffix of the adopted bucket's name; forgetting it changes nothing.
removed {
  from = random_id.bucket_name_suffix
}
