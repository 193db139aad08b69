# What terraform/root/main.tf hands to modules/mlflow on AWS.
locals {
  artifacts_destination = "s3://${join("", aws_s3_bucket.artifacts[*].bucket)}/${var.artifacts_prefix}"
  # The EKS pod identity webhook turns this into AWS_ROLE_ARN and a projected token.
  service_account_annotations = {
    "eks.amazonaws.com/role-arn" = join("", aws_iam_role.mlflow[*].arn)
  }
  pod_labels = {}
  # boto3 (MLflow's S3 artifact repository) needs the region; regional STS keeps the
  # web-identity exchange inside the region.
  server_env = {
    AWS_DEFAULT_REGION         = var.region
    AWS_REGION                 = var.region
    AWS_STS_REGIONAL_ENDPOINTS = "regional"
  }
}
