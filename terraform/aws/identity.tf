# IAM role for service accounts (IRSA): only the MLflow ServiceAccount of this
# namespace, through this cluster's OIDC issuer, may assume it; it may use only
# the artifact bucket (and its KMS key). No access keys exist anywhere.
locals {
  oidc_issuer_host = trimprefix(var.oidc_issuer_url, "https://")
  # From the name, not the resource: the policies are valid whether or not the bucket
  # is in this state (MLflow disabled, or the bucket forgotten on destroy).
  bucket_arn = "arn:${data.aws_partition.current.partition}:s3:::${var.bucket_name}"
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_iam_policy_document" "trust" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:oidc-provider/${local.oidc_issuer_host}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer_host}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${var.service_account}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer_host}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "mlflow" {
  count = var.enabled ? 1 : 0

  name               = var.role_name
  description        = "MLflow server of Nebari namespace ${var.namespace}: artifacts in ${var.bucket_name}."
  assume_role_policy = data.aws_iam_policy_document.trust.json
}

data "aws_iam_policy_document" "artifacts" {
  statement {
    sid       = "ListArtifactBucket"
    effect    = "Allow"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [local.bucket_arn]
  }

  statement {
    sid    = "ReadWriteArtifacts"
    effect = "Allow"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${local.bucket_arn}/*"]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == "" ? [] : [var.kms_key_arn]
    content {
      sid       = "UseBucketKey"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "artifacts" {
  count = var.enabled ? 1 : 0

  name   = "mlflow-artifacts"
  role   = aws_iam_role.mlflow[0].id
  policy = data.aws_iam_policy_document.artifacts.json
}
