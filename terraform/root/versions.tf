# A module may have only one required_providers block, and the cloud providers' files
# (terraform/<cloud>/<cloud>-versions.tf) hold theirs: helm, kubernetes and random are
# required, with their versions, by modules/mlflow, which is what uses them; the root
# reaches them through nebari's provider blocks (_nebari.tf.json).
terraform {
  required_version = ">= 1.0"
}
