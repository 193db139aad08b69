# The artifact store, created only while MLflow is enabled: a deployment that never
# enables it creates nothing. Disabling it later keeps the data: the stage forgets
# these objects before apply (as on nebari destroy) and adopts them again when MLflow
# is re-enabled. force_destroy is false unless the admin opts in, so
# S3 itself refuses to delete a bucket that still holds objects (and, with
# versioning, any object version), whatever Terraform plans.
resource "aws_s3_bucket" "artifacts" {
  count = var.enabled ? 1 : 0

  bucket        = var.bucket_name
  force_destroy = var.force_destroy

  tags = local.cloud_tags
}

resource "aws_s3_bucket_ownership_controls" "artifacts" {
  count = var.enabled ? 1 : 0

  bucket = aws_s3_bucket.artifacts[0].id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "artifacts" {
  count = var.enabled ? 1 : 0

  bucket = aws_s3_bucket.artifacts[0].id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "artifacts" {
  count = var.enabled ? 1 : 0

  bucket = aws_s3_bucket.artifacts[0].id

  versioning_configuration {
    status = "Enabled"
  }
}

# What versioning keeps is bounded: noncurrent versions (deleted backups, artifacts purged
# by `mlflow gc`, overwritten files) are deleted noncurrent_days after they became
# noncurrent; current objects are never touched. Kept with the bucket (forgotten on
# destroy and disable, adopted again).
resource "aws_s3_bucket_lifecycle_configuration" "artifacts" {
  count = var.enabled && var.noncurrent_days != null ? 1 : 0

  bucket = aws_s3_bucket.artifacts[0].id

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.artifacts]
}

resource "aws_s3_bucket_server_side_encryption_configuration" "artifacts" {
  count = var.enabled ? 1 : 0

  bucket = aws_s3_bucket.artifacts[0].id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == "" ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn == "" ? null : var.kms_key_arn
    }
    bucket_key_enabled = var.kms_key_arn != ""
  }
}

# TLS only: requests over plain HTTP are denied whoever makes them.
resource "aws_s3_bucket_policy" "artifacts" {
  count = var.enabled ? 1 : 0

  bucket = aws_s3_bucket.artifacts[0].id
  policy = data.aws_iam_policy_document.tls_only.json

  depends_on = [aws_s3_bucket_public_access_block.artifacts]
}

data "aws_iam_policy_document" "tls_only" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [local.bucket_arn, "${local.bucket_arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}
